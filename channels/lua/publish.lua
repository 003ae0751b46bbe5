-- Publish one room event: assign the room's next seq (a new epoch if the room's counter or
-- history was lost), splice it into the encoded JSON, append to history, trim, PUBLISH once.
-- KEYS: meta, history. ARGV: json without seq, fresh epoch, channel, keep events, keep ms,
-- key ttl s, type, time, the oldest layout generation an epoch here may have begun in, the
-- current generation (rooms over several shards: an epoch older than the room's time on this
-- shard is a copy left from before it moved away, never to be continued; see channels/shards.py).
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if epoch and tonumber(redis.call('HGET', KEYS[1], 'gen') or '0') < tonumber(ARGV[9]) then
  epoch = false
end
if not epoch then
  epoch = ARGV[2]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0, 'gen', ARGV[10])
elseif redis.call('EXISTS', KEYS[2]) == 0 and tonumber(redis.call('HGET', KEYS[1], 'seq')) > 0 then
  epoch = ARGV[2]
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0, 'gen', ARGV[10])
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local wire = string.sub(ARGV[1], 1, -2) .. ',"seq":' .. seq .. '}'
redis.call('RPUSH', KEYS[2], string.format('%013d', now) .. ' ' .. ARGV[7] .. ' ' .. wire)
local len = redis.call('LLEN', KEYS[2])
local keep = tonumber(ARGV[4])
local cutoff = now - tonumber(ARGV[5])
while len > keep do
  local head = redis.call('LINDEX', KEYS[2], 0)
  if tonumber(string.sub(head, 1, 13)) >= cutoff then break end
  redis.call('LPOP', KEYS[2])
  len = len - 1
end
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('PUBLISH', ARGV[3], epoch .. ' ' .. seq .. ' ' .. ARGV[8] .. ' ' .. ARGV[7] .. ' ' .. wire)
return seq
