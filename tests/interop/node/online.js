// Online CRUD and queries with the JS client's MobileServiceTable: returns what it observed.
'use strict';

const { run, attempt } = require('./lib');

run(async ({ client, params }) => {
    const table = client.getTable(params.table || 'todoitem');
    const out = {};
    out.inserted = await table.insert({ id: 'js-1', text: 'milk', complete: false, priority: 1 });
    await table.insert({ id: 'js-2', text: 'eggs', complete: true, priority: 2 });
    await table.insert({ id: 'js-3', text: 'bread', complete: false, priority: 3 });
    out.lookedUp = await table.lookup('js-1');

    const query = table.where({ complete: false }).orderByDescending('priority').take(5)
        .includeTotalCount();
    const page = await query.read();
    out.query = { ids: page.map((r) => r.id), totalCount: page.totalCount };

    out.updated = await table.update({ id: 'js-1', text: 'milk 2L', version: out.lookedUp.version });
    // A stale version: the update above moved the row on, so this must be a 412.
    const stale = await attempt(table.update({ id: 'js-1', text: 'stale', version: out.lookedUp.version }));
    out.stale = { ok: stale.ok, status: stale.status,
        serverInstance: stale.ok ? null : stale.error.serverInstance || null };

    out.deleted = await attempt(table.del({ id: 'js-2', version: (await table.lookup('js-2')).version }));
    out.deleted = { ok: out.deleted.ok, status: out.deleted.status };
    out.lookupDeleted = (await attempt(table.lookup('js-2'))).status;
    out.visible = (await table.read()).map((r) => r.id).sort();
    // The JS client has no includeDeleted(); the flag goes as a user-defined parameter.
    out.withDeleted = (await table.read(null, { __includeDeleted: true }))
        .map((r) => [r.id, r.deleted]).sort();
    return out;
});
