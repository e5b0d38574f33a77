-- POST refresh with rotating single-use refresh tokens (derived from the peers' wrk/refresh.lua).
-- Each wrk thread owns a FIFO of never-used refresh tokens, seeded from TOKENS_FILE (one per line,
-- partitioned by thread so no token is sent twice); every 200 must carry the rotated token, which
-- goes to the back of the FIFO. So every request presents a valid token that has never been used.
-- env: TOKENS_FILE (required), NTHREADS (= wrk -t), REFRESH_PATH (default /auth/refresh),
--      REFRESH_MODE cookie|json (default cookie), REFRESH_COOKIE (default authd_refresh),
--      REFRESH_FIELD (json mode: field in request and response, default refresh).
-- Pitfall: wrk keeps only the LAST header of a name; authd sends exactly one Set-Cookie on a
-- successful refresh, so the rotated cookie is that one. A 200 without it counts as notoken.
local path = os.getenv("REFRESH_PATH") or "/auth/refresh"
local mode = os.getenv("REFRESH_MODE") or "cookie"
local field = os.getenv("REFRESH_FIELD") or "refresh"
local cname = os.getenv("REFRESH_COOKIE") or "authd_refresh"
local nthreads = tonumber(os.getenv("NTHREADS") or "2")
local threads = {}
local counter = 0
function setup(thread)
  thread:set("tid", counter); counter = counter + 1
  table.insert(threads, thread)
end
function init(args)
  ok = 0; bad = 0; notoken = 0; empty = 0; loaded = 0
  q = {}; head = 1; tail = 0
  local f = assert(io.open(os.getenv("TOKENS_FILE"), "r"))
  local i = 0
  for line in f:lines() do
    if line ~= "" then
      if i % nthreads == tid then tail = tail + 1; q[tail] = line end
      i = i + 1
    end
  end
  f:close()
  loaded = tail
end
function request()
  local tok
  if head <= tail then tok = q[head]; q[head] = nil; head = head + 1
  else empty = empty + 1; tok = "pool-exhausted" end
  if mode == "cookie" then
    return wrk.format("POST", path, { ["Cookie"] = cname .. "=" .. tok }, "")
  else
    return wrk.format("POST", path, { ["Content-Type"] = "application/json" },
                      '{"' .. field .. '":"' .. tok .. '"}')
  end
end
function response(status, headers, body)
  local tok
  if mode == "cookie" then
    for k, v in pairs(headers) do
      if string.lower(k) == "set-cookie" then
        local m = string.match(v, cname .. "=([^;]+)")
        if m then tok = m end
      end
    end
  else
    tok = string.match(body, '"' .. field .. '"%s*:%s*"([^"]+)"')
  end
  if status == 200 and tok then ok = ok + 1; tail = tail + 1; q[tail] = tok
  elseif status == 200 then notoken = notoken + 1
  else bad = bad + 1 end
end
function done(summary, latency, requests)
  local o, b, n, e, l = 0, 0, 0, 0, 0
  for _, t in ipairs(threads) do
    o = o + t:get("ok"); b = b + t:get("bad"); n = n + t:get("notoken")
    e = e + t:get("empty"); l = l + t:get("loaded")
  end
  io.write(string.format("LUA ok=%d bad=%d ok_without_new_token=%d pool_empty=%d tokens_loaded=%d\n",
                         o, b, n, e, l))
end
