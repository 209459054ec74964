// Exercises the window.sqlitePlugin shim directly: commit, rollback on a failing statement,
// an error callback returning false (handled: the transaction goes on), sqlBatch, close.
'use strict';

const { run } = require('./lib');

function call(fn) {
    return new Promise((resolve, reject) => fn(resolve, reject));
}

function rows(db) {
    return call((ok, fail) => db.executeSql('SELECT id, n FROM t ORDER BY id', [], (res) => {
        const out = [];
        for (let i = 0; i < res.rows.length; i++) out.push(res.rows.item(i));
        ok(out);
    }, fail));
}

run(async ({ params }) => {
    const db = await call((ok, fail) => {
        const handle = window.sqlitePlugin.openDatabase({ name: params.db, location: 'default' },
            () => ok(handle), fail);
    });
    const out = {};
    await call((ok, fail) => db.transaction((tx) => {
        tx.executeSql('CREATE TABLE t (id TEXT PRIMARY KEY, n INTEGER)');
        tx.executeSql('INSERT INTO t VALUES (?, ?)', ['a', 1], (tx2, res) => {
            out.insertId = res.insertId;
            tx2.executeSql('INSERT INTO t VALUES (?, ?)', ['b', 2]);
        });
    }, fail, ok));
    out.afterCommit = await rows(db);
    out.rollbackError = await call((ok) => db.transaction((tx) => {
        tx.executeSql('INSERT INTO t VALUES (?, ?)', ['c', 3]);
        tx.executeSql('INSERT INTO t VALUES (?, ?)', ['a', 9]);  // duplicate key: rolls back
    }, () => ok(true), () => ok(false)));
    out.afterRollback = await rows(db);
    await call((ok, fail) => db.transaction((tx) => {
        tx.executeSql('INSERT INTO t VALUES (?, ?)', ['a', 9], null, () => false);
        tx.executeSql('INSERT INTO t VALUES (?, ?)', ['c', 3]);
    }, fail, ok));
    out.handledErrorContinues = await rows(db);
    await call((ok, fail) => db.sqlBatch([
        'CREATE TABLE u (x INTEGER)', ['INSERT INTO u VALUES (?)', [1]],
        ['INSERT INTO u VALUES (?)', [4]],
    ], ok, fail));
    out.batch = await call((ok, fail) => db.executeSql('SELECT SUM(x) AS s FROM u', [],
        (res) => ok(res.rows.item(0).s), fail));
    await call((ok, fail) => db.close(ok, fail));
    return out;
});
