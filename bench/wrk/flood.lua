-- Every request comes from a different client as authd sees it (AUTHD_TRUST_FORWARDED_FOR=true):
-- a random IPv4 in X-Forwarded-For, so each one creates a new rate-limiter key.
local n = 0
function setup(thread)
  n = n + 1
  thread:set("seed", n)
end
function init(args)
  math.randomseed(os.time() * 1000 + seed)
end
function request()
  local ip = string.format("%d.%d.%d.%d", math.random(1, 223), math.random(0, 255), math.random(0, 255), math.random(1, 254))
  return wrk.format("POST", "/auth/refresh", { ["X-Forwarded-For"] = ip })
end
