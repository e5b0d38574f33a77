-- POST a JSON login (from the peers' wrk/login.lua). env: LOGIN_PATH (default /auth/login),
-- LOGIN_BODY (JSON credentials, required). Success = HTTP 200.
local path = os.getenv("LOGIN_PATH") or "/auth/login"
local body = assert(os.getenv("LOGIN_BODY"), "LOGIN_BODY not set")
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) ok = 0; bad = 0 end
function request()
  return wrk.format("POST", path, { ["Content-Type"] = "application/json" }, body)
end
function response(status, headers, b)
  if status == 200 then ok = ok + 1 else bad = bad + 1 end
end
function done(summary, latency, requests)
  local o, b = 0, 0
  for _, t in ipairs(threads) do o = o + t:get("ok"); b = b + t:get("bad") end
  io.write(string.format("LUA ok=%d bad=%d\n", o, b))
end
