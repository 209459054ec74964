// The official Node.js server (azure-mobile-apps 4.0.2, express, sqlite provider) as an interop peer.
//
//   node server.js --port 8123 --db /tmp/x.sqlite [--page-size 50] [--tables todoitem,other]
//
// Listens on 127.0.0.1 and prints "ready <port>" once it accepts connections. Every table is soft
// delete + dynamic schema; `movies` also declares the columns of the Datasync movies data set.
//
// Two test-only routes sit beside the SDK's:
// - POST /_interop/bulk/<table> with a JSON array of items (same keys in each) inserts them with
//   ONE multi-row INSERT on the SDK's own sqlite connection. SQLite evaluates 'now' once per
//   statement, so every row gets the same updatedAt: the only way to reproduce the "many rows in
//   one millisecond" case deterministically.
// - POST /_interop/reset drops every table (rows, learned columns, triggers) and re-creates
//   them as at startup, so one server process can serve many tests (Node startup is the
//   slowest part of a test).
'use strict';

const express = require('express');
const azureMobileApps = require('azure-mobile-apps');
const sqlite3 = require('sqlite3');

function parseArgs(argv) {
    const args = { port: 0, db: ':memory:', pageSize: 50, tables: ['todoitem'] };
    for (let i = 2; i < argv.length; i += 2) {
        const value = argv[i + 1];
        switch (argv[i]) {
            case '--port': args.port = Number(value); break;
            case '--db': args.db = value; break;
            case '--page-size': args.pageSize = Number(value); break;
            case '--tables': args.tables = value.split(',').filter(Boolean); break;
            default: throw new Error('unknown argument ' + argv[i]);
        }
    }
    return args;
}

const MOVIE_COLUMNS = {
    title: 'string', duration: 'number', rating: 'string', releaseDate: 'date',
    bestPictureWinner: 'boolean', year: 'number',
};

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

function sqlValue(value) {
    if (typeof value === 'boolean') return value ? 1 : 0;
    if (value === undefined) return null;
    return value;
}

function bulkInsert(db, table, items, res) {
    if (!IDENTIFIER.test(table) || !Array.isArray(items) || items.length === 0) {
        return res.status(400).json({ error: 'bulk: a known table and a non-empty array are required' });
    }
    const columns = Object.keys(items[0]);
    if (!columns.every((c) => IDENTIFIER.test(c))) {
        return res.status(400).json({ error: 'bulk: invalid column name' });
    }
    const row = '(' + columns.map(() => '?').join(',') + ')';
    const sql = 'INSERT INTO [' + table + '] (' + columns.map((c) => '[' + c + ']').join(',') +
        ') VALUES ' + items.map(() => row).join(',');
    const params = [];
    for (const item of items) for (const c of columns) params.push(sqlValue(item[c]));
    db.run(sql, params, function (err) {
        if (err) return res.status(400).json({ error: String(err.message || err) });
        res.status(201).json({ inserted: this.changes });
    });
}

function sqlRun(db, sql, params) {
    return new Promise((resolve, reject) => {
        db.run(sql, params || [], (err) => (err ? reject(err) : resolve()));
    });
}

async function resetTables(db, mobile) {
    const tables = mobile.configuration.tables;
    for (const name of Object.keys(tables)) {
        await sqlRun(db, 'DROP TABLE IF EXISTS [' + name + ']');
        // The sqlite provider remembers learned columns in [__types] and on the definition.
        await sqlRun(db, 'DELETE FROM [__types] WHERE [table] = ?', [name]).catch(() => undefined);
        delete tables[name].sqliteColumns;
    }
    await mobile.tables.initialize();
}

function main() {
    const args = parseArgs(process.argv);
    const app = express();
    const mobile = azureMobileApps({
        data: { provider: 'sqlite', filename: args.db },
        pageSize: args.pageSize,
        maxTop: 1000,
        homePage: false,
        swagger: false,
        logging: { level: 'error', transports: [] },
    });
    mobile.tables.add('movies', { dynamicSchema: true, softDelete: true, columns: MOVIE_COLUMNS });
    for (const name of args.tables) {
        if (name !== 'movies') mobile.tables.add(name, { dynamicSchema: true, softDelete: true });
    }
    // The SDK keeps one cached connection per filename; this is the same object it writes through.
    const db = new sqlite3.cached.Database(args.db);
    // A test peer needs no durability; skipping fsync makes each write several times faster.
    // Set before the SDK's first statement (below): SQLite refuses to change it inside a
    // transaction, and sent unawaited it sometimes landed in the SDK's schema transaction
    // and crashed the server ("Safety level may not be changed inside a transaction").
    const durabilityOff = new Promise((resolve, reject) => {
        db.run('PRAGMA synchronous = OFF', (err) => (err ? reject(err) : resolve()));
    });
    app.post('/_interop/bulk/:table', express.json({ limit: '20mb' }), (req, res) => {
        bulkInsert(db, req.params.table, req.body, res);
    });
    app.post('/_interop/reset', (req, res) => {
        resetTables(db, mobile).then(() => res.status(204).end(),
            (err) => res.status(500).json({ error: String(err && err.message || err) }));
    });
    app.use(mobile);
    durabilityOff.then(() => mobile.tables.initialize()).then(() => {
        const server = app.listen(args.port, '127.0.0.1', () => {
            process.stdout.write('ready ' + server.address().port + '\n');
        });
    }).catch((err) => {
        process.stderr.write('startup failed: ' + (err && err.stack || err) + '\n');
        process.exit(1);
    });
}

main();
