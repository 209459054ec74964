// Shared scaffolding for the JS client scenario scripts.
//
//   node <scenario>.js <server url> '<json params>'
//
// Installs the shims, builds a MobileServiceClient for the URL, runs the scenario, and prints
// exactly one JSON line: {"ok": true, "result": ...} or {"ok": false, "error": "..."}. The
// scenario's sqlite files go to the current directory (a temporary one the harness owns).
'use strict';

require('./shims').install();
const azure = require('azure-mobile-apps-client');

function describe(err) {
    if (!err) return String(err);
    const parts = [err.message || String(err)];
    if (err.request) parts.push('HTTP ' + err.request.status + ' ' + err.request.responseText);
    if (err.stack) parts.push(err.stack);
    return parts.join('\n');
}

function finish(payload) {
    process.stdout.write(JSON.stringify(payload) + '\n', () => process.exit(0));
}

// The HTTP status the SDK saw, or null when the call did not fail over HTTP.
function statusOf(err) {
    return err && err.request ? err.request.status : null;
}

// Await an SDK promise and capture its failure instead of throwing (SDK promises have no .catch).
async function attempt(promise) {
    try {
        return { ok: true, value: await Promise.resolve(promise) };
    } catch (err) {
        return { ok: false, status: statusOf(err), error: err };
    }
}

function run(scenario) {
    const url = process.argv[2];
    const params = JSON.parse(process.argv[3] || '{}');
    const timer = setTimeout(() => finish({ ok: false, error: 'scenario timed out' }),
        params.timeoutMs || 50000);
    const client = new azure.MobileServiceClient(url);
    Promise.resolve()
        .then(() => scenario({ url, params, azure, client }))
        .then((result) => { clearTimeout(timer); finish({ ok: true, result }); },
            (err) => { clearTimeout(timer); finish({ ok: false, error: describe(err) }); });
}

module.exports = { run, attempt, statusOf, describe, azure };
