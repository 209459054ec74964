// Shims that let the browser/Cordova JS client (azure-mobile-apps-client 2.0.1) run under Node.js
// without changing any of its files.
//
// 1. global.XMLHttpRequest from the `xmlhttprequest` package, with its forbidden-header check
//    disabled (the SDK sets headers a browser would refuse). The SDK's transport test is
//    `'withCredentials' in new XMLHttpRequest()`, which that package satisfies.
// 2. global.window = global and global.cordova = { version }, so the SDK picks its Cordova build,
//    the only one that exports MobileServiceSqliteStore.
// 3. window.sqlitePlugin.openDatabase(): the cordova-sqlite-storage API (transaction, executeSql,
//    sqlBatch, close) over node `sqlite3`, enough for MobileServiceSqliteStore.
'use strict';

const sqlite3 = require('sqlite3');
const { XMLHttpRequest: NodeXHR } = require('xmlhttprequest');

function XMLHttpRequest() {
    const xhr = new NodeXHR();
    xhr.setDisableHeaderCheck(true);
    return xhr;
}

// The WebSQL result shape: rows.length, rows.item(i), rowsAffected, insertId.
function resultSet(rows, changes, lastId) {
    return {
        rows: { length: rows.length, item: (i) => rows[i] },
        rowsAffected: changes,
        insertId: lastId,
    };
}

const READS = /^\s*(SELECT|PRAGMA|WITH|EXPLAIN)\b/i;

function execute(db, sql, params) {
    const values = (params || []).map((v) => (v === undefined ? null : v));
    return new Promise((resolve, reject) => {
        if (READS.test(sql)) {
            db.all(sql, values, (err, rows) => (err ? reject(err) : resolve(resultSet(rows, 0))));
        } else {
            db.run(sql, values, function (err) {
                if (err) reject(err);
                else resolve(resultSet([], this.changes, this.lastID));
            });
        }
    });
}

// Runs one WebSQL-style transaction: `body(tx)` queues statements; their callbacks may queue more;
// it commits once the queue is empty. A failing statement rolls back unless its error callback
// returns false (the cordova-sqlite-storage rule); an exception in any callback rolls back too.
async function runTransaction(db, body) {
    const queue = [];
    const tx = {
        executeSql(sql, params, ok, fail) {
            queue.push({ sql, params, ok, fail });
        },
    };
    await execute(db, 'BEGIN', []);
    try {
        body(tx);
        while (queue.length > 0) {
            const st = queue.shift();
            let result;
            try {
                result = await execute(db, st.sql, st.params);
            } catch (err) {
                if (st.fail && st.fail(tx, err) === false) continue;
                throw err;
            }
            if (st.ok) st.ok(tx, result);
        }
        await execute(db, 'COMMIT', []);
    } catch (err) {
        await execute(db, 'ROLLBACK', []).catch(() => undefined);
        throw err;
    }
}

class Database {
    constructor(db) {
        this._db = db;
        // Transactions on one connection must not interleave: every call joins this chain.
        this._chain = Promise.resolve();
    }

    _enqueue(work, success, error) {
        const run = this._chain.then(work);
        this._chain = run.catch(() => undefined);
        run.then(
            (value) => { if (success) success(value); },
            (err) => { if (error) error(err); },
        );
    }

    transaction(body, error, success) {
        this._enqueue(() => runTransaction(this._db, body), () => success && success(), error);
    }

    readTransaction(body, error, success) {
        this.transaction(body, error, success);
    }

    executeSql(sql, params, success, error) {
        this._enqueue(() => execute(this._db, sql, params), success, error);
    }

    sqlBatch(statements, success, error) {
        const body = (tx) => {
            for (const st of statements) {
                if (Array.isArray(st)) tx.executeSql(st[0], st[1]);
                else tx.executeSql(st, []);
            }
        };
        this._enqueue(() => runTransaction(this._db, body), () => success && success(), error);
    }

    close(success, error) {
        const closeDb = () => new Promise((resolve, reject) => {
            this._db.close((err) => (err ? reject(err) : resolve()));
        });
        this._enqueue(closeDb, () => success && success(), error);
    }
}

const sqlitePlugin = {
    openDatabase(options, success, error) {
        const name = typeof options === 'string' ? options : options.name;
        let handle;
        const db = new sqlite3.Database(name, (err) => {
            if (err) {
                if (error) error(err);
                return;
            }
            // A test device needs no durability; the JS store commits once per record, and
            // an fsync each time made pulls of a few dozen rows take seconds.
            db.run('PRAGMA synchronous = OFF', () => success && success(handle));
        });
        handle = new Database(db);
        return handle;
    },
};

function install() {
    global.XMLHttpRequest = XMLHttpRequest;
    global.window = global;
    global.cordova = { version: '9.0.0' };
    global.sqlitePlugin = sqlitePlugin;
}

module.exports = { install, sqlitePlugin };
