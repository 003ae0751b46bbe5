-- Where a room stands: epoch, seq and, if history still covers `since`, the events after it.
-- Creates the room's epoch if it has none, so a joiner of a silent room still gets one.
-- KEYS: meta, history. ARGV: since (-1: none), client epoch ('': none), fresh epoch, key ttl s,
-- max replay, oldest valid layout generation, current generation (as in publish.lua).
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if epoch and tonumber(redis.call('HGET', KEYS[1], 'gen') or '0') < tonumber(ARGV[6]) then
  epoch = false
end
local seq
if not epoch then
  epoch = ARGV[3]
  seq = 0
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0, 'gen', ARGV[7])
else
  seq = tonumber(redis.call('HGET', KEYS[1], 'seq'))
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
local since = tonumber(ARGV[1])
if since < 0 or since > seq or (ARGV[2] ~= '' and ARGV[2] ~= epoch) then return {epoch, seq, 0, {}} end
if since == seq then return {epoch, seq, 1, {}} end
if seq - since > tonumber(ARGV[5]) then return {epoch, seq, 0, {}} end
local len = redis.call('LLEN', KEYS[2])
local head = seq - len + 1
if since + 1 < head then return {epoch, seq, 0, {}} end
return {epoch, seq, 1, redis.call('LRANGE', KEYS[2], since + 1 - head, -1)}
