-- GET a protected resource with one Bearer access token (from the peers' wrk/me.lua).
-- env: ME_PATH (default /auth/me), ACCESS_FILE (file whose first line is the token). Success = 200.
local path = os.getenv("ME_PATH") or "/auth/me"
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args)
  ok = 0; bad = 0
  local f = assert(io.open(os.getenv("ACCESS_FILE"), "r"))
  local tok = f:read("*l"); f:close()
  hdr = { ["Authorization"] = "Bearer " .. tok }
end
function request() return wrk.format("GET", path, hdr) end
function response(status, headers, body)
  if status == 200 then ok = ok + 1 else bad = bad + 1 end
end
function done(summary, latency, requests)
  local o, b = 0, 0
  for _, t in ipairs(threads) do o = o + t:get("ok"); b = b + t:get("bad") end
  io.write(string.format("LUA ok=%d bad=%d\n", o, b))
end
