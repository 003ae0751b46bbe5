-- Publish room events, in the order given: for each, assign its room's next seq (a new epoch if
-- the room's counter or history was lost), splice it into the encoded JSON, append to history,
-- trim, PUBLISH once. One call carries one event or several (an `ask` reaches three rooms), so
-- an event's rooms cost one round trip; the rooms must live on this one Redis (`ShardedStream.publish_many`
-- in channels/sharding.py groups them), which is why this is not run on Redis Cluster.
-- KEYS: meta and history of each event's room, in pairs.
-- ARGV[1..4]: keep events, keep ms, key ttl s, time (the publisher's clock, for latency).
-- Then 6 per event: json without seq, fresh epoch, channel, type, the oldest layout generation an
-- epoch here may have begun in, the current generation (rooms over several shards: an epoch older
-- than the room's time on this shard is a copy left from before it moved away, never to be
-- continued; see channels/shards.py).
-- Returns the seqs, in order.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local stamp = string.format('%013d', now)
local keep = tonumber(ARGV[1])
local cutoff = now - tonumber(ARGV[2])
local ttl = ARGV[3]
local seqs = {}
for i = 1, #KEYS / 2 do
  local meta, history = KEYS[2 * i - 1], KEYS[2 * i]
  local a = 4 + 6 * (i - 1)
  local json, fresh, channel, kind, oldest, current = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6]
  local epoch = redis.call('HGET', meta, 'epoch')
  if epoch and tonumber(redis.call('HGET', meta, 'gen') or '0') < tonumber(oldest) then
    epoch = false
  end
  if not epoch then
    epoch = fresh
    redis.call('DEL', history)
    redis.call('HSET', meta, 'epoch', epoch, 'seq', 0, 'gen', current)
  elseif redis.call('EXISTS', history) == 0 and tonumber(redis.call('HGET', meta, 'seq')) > 0 then
    epoch = fresh
    redis.call('HSET', meta, 'epoch', epoch, 'seq', 0, 'gen', current)
  end
  local seq = redis.call('HINCRBY', meta, 'seq', 1)
  local wire = string.sub(json, 1, -2) .. ',"seq":' .. seq .. '}'
  local len = redis.call('RPUSH', history, stamp .. ' ' .. kind .. ' ' .. wire)
  while len > keep do
    local head = redis.call('LINDEX', history, 0)
    if tonumber(string.sub(head, 1, 13)) >= cutoff then break end
    redis.call('LPOP', history)
    len = len - 1
  end
  redis.call('EXPIRE', meta, ttl)
  redis.call('EXPIRE', history, ttl)
  redis.call('PUBLISH', channel, epoch .. ' ' .. seq .. ' ' .. ARGV[4] .. ' ' .. kind .. ' ' .. wire)
  seqs[i] = seq
end
return seqs
