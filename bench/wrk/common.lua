-- Shared by the scenario scripts (loaded with dofile): headers, per-thread random seeds, and a
-- done() that prints one machine-readable line with requests, errors and latency percentiles.
--
-- Environment: BENCH_TABLE (table name), BENCH_API ("2.0.0" or "3.0.0"), BENCH_ROWS (seeded rows,
-- ids id-000000 ... id-<rows-1>).

bench = {
    table = os.getenv("BENCH_TABLE") or "bench",
    api = os.getenv("BENCH_API") or "3.0.0",
    rows = tonumber(os.getenv("BENCH_ROWS") or "100000"),
}

wrk.headers["ZUMO-API-VERSION"] = bench.api
wrk.headers["Accept"] = "application/json"

local threads = 0

function setup(thread)
    threads = threads + 1
    thread:set("thread_id", threads)
end

function init(args)
    -- Each thread gets its own sequence; the clock keeps two runs from repeating each other.
    math.randomseed(os.time() * 1000 + (thread_id or 0) * 7919)
end

function bench.random_id()
    return string.format("id-%06d", math.random(0, bench.rows - 1))
end

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        'BENCH_RESULT {"requests": %d, "duration_us": %d, "status_errors": %d, ' ..
        '"connect_errors": %d, "read_errors": %d, "write_errors": %d, "timeouts": %d, ' ..
        '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\n',
        summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
        latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
