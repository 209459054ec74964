// Offline sync with the JS client: MobileServiceSyncContext over MobileServiceSqliteStore.
//
// params: {
//   db: absolute path of the local sqlite file (kept between runs, so a test can run several
//       steps lists against one device),
//   table: 'todoitem', columns: { text: 'string', ... } (system columns are added),
//   steps: [ {op: 'insert', item}, {op: 'update', id, changes}, {op: 'delete', id},
//            {op: 'lookup', id}, {op: 'read'}, {op: 'pending'},
//            {op: 'push', onConflict: 'cancelAndUpdate' | 'cancelAndUpdateFromBody' | 'none'},
//            {op: 'pull', queryId: null | 'q', filter: {field: value}, pageSize},
//            {op: 'purge', force} ]
// }
// result: one entry per step (what that step observed).
'use strict';

const { run, attempt, describe } = require('./lib');

const SYSTEM_COLUMNS = { id: 'string', version: 'string', createdAt: 'date', updatedAt: 'date',
    deleted: 'boolean' };
const DATE_COLUMNS = ['createdAt', 'updatedAt'];

// A record as JSON-safe data: dates as ISO strings, keys sorted.
function plain(record) {
    if (!record) return record === undefined ? null : record;
    const out = {};
    for (const key of Object.keys(record).sort()) {
        const value = record[key];
        out[key] = value instanceof Date ? value.toISOString() : value;
    }
    return out;
}

// The 409/412 body holds dates as strings; the store refuses strings for 'date' columns.
function asStoreRecord(record) {
    const copy = Object.assign({}, record);
    for (const key of DATE_COLUMNS) if (typeof copy[key] === 'string') copy[key] = new Date(copy[key]);
    return copy;
}

function conflictHandler(mode, seen) {
    return {
        // The SDK swallows a handler's exception (the error just stays unhandled): record it.
        onConflict: async (pushError) => {
            const request = pushError.getError().request;
            // The SDK fills the server record for 412 only; for 409 the body is all there is.
            const server = pushError.getServerRecord();
            const body = request.responseText ? JSON.parse(request.responseText) : null;
            const entry = { status: request.status, action: pushError.getAction(),
                serverRecord: plain(server), responseBody: body,
                clientRecord: plain(pushError.getClientRecord()) };
            seen.push(entry);
            try {
                if (mode === 'cancelAndUpdate') await pushError.cancelAndUpdate(asStoreRecord(server));
                if (mode === 'cancelAndUpdateFromBody') {
                    await pushError.cancelAndUpdate(asStoreRecord(body));
                }
            } catch (err) {
                entry.handlerError = describe(err);
            }
        },
        onError: async (pushError) => {
            seen.push({ error: describe(pushError.getError()) });
        },
    };
}

function makeSteps(ctx, table, tableName) {
    const { azure } = ctx;
    return {
        insert: async (s) => plain(await table.insert(s.item)),
        update: async (s) => {
            const current = await table.lookup(s.id);
            return plain(await table.update(Object.assign({}, current, s.changes)));
        },
        delete: async (s) => {
            await table.del({ id: s.id });
            return null;
        },
        lookup: async (s) => plain(await table.lookup(s.id, true)),
        read: async () => (await table.read(new azure.Query(tableName).orderBy('id'))).map(plain),
        pending: async () => {
            const ops = await ctx.store.read(new azure.Query('__operations').orderBy('id'));
            return ops.map((op) => ({ action: op.action, itemId: op.itemId, tableName: op.tableName }));
        },
        push: async (s) => {
            const seen = [];
            ctx.sync.pushHandler = conflictHandler(s.onConflict || 'none', seen);
            const unhandled = await ctx.sync.push();
            return { conflicts: seen, unhandled: (unhandled || []).length };
        },
        pull: async (s) => {
            let query = table.where(s.filter || {});
            const settings = s.pageSize ? { pageSize: s.pageSize } : undefined;
            const result = await attempt(table.pull(query, s.queryId || null, settings));
            if (!result.ok) throw result.error;
            return (await table.read(new azure.Query(tableName).orderBy('id'))).length;
        },
        purge: async (s) => {
            await table.purge(new azure.Query(tableName), !!s.force);
            return (await table.read(new azure.Query(tableName))).length;
        },
    };
}

run(async (ctx) => {
    const { params, azure, client } = ctx;
    const tableName = params.table || 'todoitem';
    ctx.store = new azure.MobileServiceSqliteStore(params.db);
    await ctx.store.defineTable({ name: tableName,
        columnDefinitions: Object.assign({}, SYSTEM_COLUMNS, params.columns || {}) });
    ctx.sync = client.getSyncContext();
    await ctx.sync.initialize(ctx.store);
    const table = client.getSyncTable(tableName);
    const steps = makeSteps(ctx, table, tableName);
    const results = [];
    for (const step of params.steps) {
        if (!steps[step.op]) throw new Error('unknown step ' + step.op);
        results.push(await steps[step.op](step));
    }
    await ctx.store.close();
    return results;
});
