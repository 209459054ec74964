-- (b) A read by id, uniformly over the seeded rows.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

function request()
    return wrk.format("GET", "/tables/" .. bench.table .. "/" .. bench.random_id())
end
