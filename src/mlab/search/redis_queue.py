"""The queue on a real Redis server, for workers on many machines (``redis://host:port/db``).

Each operation that reads and writes (claim, heartbeat, complete, fail, submit) is one Lua
script, which Redis runs atomically (https://redis.io/docs/latest/develop/programmability/
eval-intro/); lease times come from the server's clock (``TIME``), so workers' clocks need
not agree. Keys, under a prefix (``mlab:search``):

- ``job:<id>``: a hash (search, params, config, state, attempts, max_attempts, worker, token,
  lease_until, error, seq);
- ``ids``: every job by submission order; ``ready``: queued jobs available now, by order;
  ``delayed``: queued jobs waiting out a retry's back-off, by the time they are due;
  ``running``: claimed jobs by lease expiry; ``dead``: the dead-letter list;
- ``results``: job id -> result (JSON), written with ``HSETNX``: only the first result stays.

Durability is the server's: run it with the append-only file on (``appendonly yes``;
``appendfsync always`` loses nothing a client was told was written). A worker that loses its
connection (a restart) retries with full-jitter back-off and says so on stderr.
"""

from __future__ import annotations

import json
import random
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar

from mlab.errors import ConfigError
from mlab.search.queue import Job, JobSpec, Queue, backoff_delay

__all__ = ["RedisQueue"]

T = TypeVar("T")

_NOW = "local t = redis.call('TIME'); local now = tonumber(t[1]) + tonumber(t[2]) / 1e6\n"

_SUBMIT = """
local p = ARGV[1]; local added = 0
for i = 2, #ARGV, 6 do
  local id = ARGV[i]; local k = p .. ':job:' .. id
  if redis.call('EXISTS', k) == 0 then
    local seq = redis.call('INCR', p .. ':seq')
    redis.call('HSET', k, 'id', id, 'search', ARGV[i + 1], 'params', ARGV[i + 2],
      'config', ARGV[i + 3], 'max_attempts', ARGV[i + 4], 'runner', ARGV[i + 5],
      'state', 'queued', 'attempts', 0, 'seq', seq)
    redis.call('ZADD', p .. ':ids', seq, id)
    redis.call('ZADD', p .. ':ready', seq, id)
    added = added + 1
  end
end
return added
"""

_CLAIM = (
    _NOW
    + """
local p = ARGV[1]; local lease = tonumber(ARGV[3])
for _, id in ipairs(redis.call('ZRANGEBYSCORE', p .. ':running', '-inf', '(' .. now)) do
  local k = p .. ':job:' .. id
  local a = tonumber(redis.call('HGET', k, 'attempts'))
  redis.call('ZREM', p .. ':running', id)
  redis.call('HSET', k, 'token', '', 'error', 'lease expired: worker ' ..
    (redis.call('HGET', k, 'worker') or '?') .. ' stopped heartbeating (try ' .. a .. ')')
  if a >= tonumber(redis.call('HGET', k, 'max_attempts')) then
    redis.call('HSET', k, 'state', 'dead')
    redis.call('RPUSH', p .. ':dead', id)
  else
    redis.call('HSET', k, 'state', 'queued')
    redis.call('ZADD', p .. ':ready', redis.call('HGET', k, 'seq'), id)
  end
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', p .. ':delayed', '-inf', now)) do
  redis.call('ZREM', p .. ':delayed', id)
  redis.call('ZADD', p .. ':ready', redis.call('HGET', p .. ':job:' .. id, 'seq'), id)
end
local top = redis.call('ZPOPMIN', p .. ':ready')
if #top == 0 then return false end
local id = top[1]; local k = p .. ':job:' .. id
redis.call('HSET', k, 'state', 'running', 'worker', ARGV[2], 'token', ARGV[4],
  'lease_until', tostring(now + lease))
redis.call('HINCRBY', k, 'attempts', 1)
redis.call('ZADD', p .. ':running', now + lease, id)
return id
"""
)

_HEARTBEAT = (
    _NOW
    + """
local p = ARGV[1]; local id = ARGV[2]; local k = p .. ':job:' .. id
if redis.call('HGET', k, 'token') ~= ARGV[3] or redis.call('HGET', k, 'state') ~= 'running' then
  return 0
end
local until_ = now + tonumber(ARGV[4])
redis.call('HSET', k, 'lease_until', tostring(until_))
redis.call('ZADD', p .. ':running', until_, id)
return 1
"""
)

_COMPLETE = """
local p = ARGV[1]; local id = ARGV[2]; local k = p .. ':job:' .. id
if redis.call('EXISTS', k) == 0 then return 0 end
if redis.call('HSETNX', p .. ':results', id, ARGV[3]) == 0 then return 0 end
redis.call('HSET', k, 'state', 'done', 'token', '')
redis.call('ZREM', p .. ':running', id)
redis.call('ZREM', p .. ':ready', id)
redis.call('ZREM', p .. ':delayed', id)
redis.call('LREM', p .. ':dead', 0, id)
return 1
"""

_FAIL = (
    _NOW
    + """
local p = ARGV[1]; local id = ARGV[2]; local k = p .. ':job:' .. id
if redis.call('HGET', k, 'token') ~= ARGV[3] or redis.call('HGET', k, 'state') ~= 'running' then
  return 'stale'
end
redis.call('ZREM', p .. ':running', id)
redis.call('HSET', k, 'token', '', 'error', ARGV[4])
if tonumber(redis.call('HGET', k, 'attempts')) >= tonumber(redis.call('HGET', k, 'max_attempts'))
then
  redis.call('HSET', k, 'state', 'dead')
  redis.call('RPUSH', p .. ':dead', id)
  return 'dead'
end
redis.call('HSET', k, 'state', 'queued')
redis.call('ZADD', p .. ':delayed', now + tonumber(ARGV[5]), id)
return 'queued'
"""
)


class RedisQueue(Queue):
    """The queue on the Redis server at ``url``. Operations that lose the connection retry
    with back-off for up to ``reconnect_s`` seconds, printing each retry with ``say``."""

    def __init__(
        self,
        url: str,
        prefix: str = "mlab:search",
        reconnect_s: float = 120.0,
        say: Callable[[str], None] | None = None,
    ) -> None:
        try:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry
        except ImportError:
            raise ConfigError(
                "the Redis backend needs redis-py: pip install -e '.[train]'"
            ) from None
        self.url, self.prefix, self.reconnect_s = url, prefix, reconnect_s
        self.say = say or (lambda m: print(m, file=sys.stderr, flush=True))
        # No retries inside redis-py: ours below back off and say so.
        self.client = redis.Redis.from_url(
            url,
            decode_responses=True,
            socket_connect_timeout=5,
            socket_timeout=30,
            retry=Retry(NoBackoff(), 0),
        )
        self._lost = (redis.ConnectionError, redis.TimeoutError)
        self._rng = random.Random()
        s = self.client.register_script
        self._submit, self._claim = s(_SUBMIT), s(_CLAIM)
        self._heartbeat, self._complete, self._fail = s(_HEARTBEAT), s(_COMPLETE), s(_FAIL)

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """``fn()``, retried with full-jitter back-off while the server cannot be reached."""
        started, attempt = time.monotonic(), 0
        while True:
            try:
                return fn()
            except self._lost as err:
                attempt += 1
                waited = time.monotonic() - started
                if waited > self.reconnect_s:
                    raise ConnectionError(
                        f"{what}: the queue at {self.url} has not answered for {waited:.0f} s "
                        f"({err}); is redis-server running?"
                    ) from err
                delay = backoff_delay(attempt, 0.1, 2.0, self._rng)
                self.say(
                    f"lost the queue at {self.url} during {what} ({type(err).__name__}: "
                    f"{err}); retrying in {delay:.2f} s (try {attempt})"
                )
                time.sleep(delay)

    def submit(self, jobs: Sequence[JobSpec]) -> int:
        added = 0
        for start in range(0, len(jobs), 500):
            args: list[str | int | float] = [self.prefix]
            for spec in jobs[start : start + 500]:
                args += [spec.id, spec.search, json.dumps(spec.params), spec.config]
                args += [spec.max_attempts, spec.runner]
            added += int(self._call("submit", partial(self._submit, args=args)))
        return added

    def claim(self, worker: str, lease_s: float) -> Job | None:
        token = uuid.uuid4().hex
        job_id = self._call(
            "claim", lambda: self._claim(args=[self.prefix, worker, lease_s, token])
        )
        return None if job_id is None else self._read(str(job_id))

    def heartbeat(self, job_id: str, token: str, lease_s: float) -> bool:
        args: list[str | float] = [self.prefix, job_id, token, lease_s]
        return bool(self._call("heartbeat", lambda: self._heartbeat(args=args)))

    def complete(self, job_id: str, token: str, result: dict[str, Any]) -> bool:
        args = [self.prefix, job_id, json.dumps(result)]
        return bool(self._call("complete", lambda: self._complete(args=args)))

    def fail(self, job_id: str, token: str, error: str, retry_in: float) -> str:
        args: list[str | float] = [self.prefix, job_id, token, error, retry_in]
        return str(self._call("fail", lambda: self._fail(args=args)))

    def _read(self, job_id: str) -> Job | None:
        jobs = self._read_many([job_id])
        return jobs[0] if jobs else None

    def _read_many(self, ids: list[str]) -> list[Job]:
        def read() -> tuple[list[dict[str, str]], list[Any]]:
            pipe = self.client.pipeline(transaction=False)
            for job_id in ids:
                pipe.hgetall(f"{self.prefix}:job:{job_id}")
            hashes = pipe.execute()
            results = self.client.hmget(f"{self.prefix}:results", ids) if ids else []
            return hashes, results

        hashes, results = self._call("read", read)
        jobs = []
        for h, result in zip(hashes, results, strict=True):
            if not h:
                continue
            lease = h.get("lease_until")
            jobs.append(
                Job(
                    id=h["id"],
                    search=h["search"],
                    params=json.loads(h["params"]),
                    config=h["config"],
                    state=h["state"],
                    attempts=int(h["attempts"]),
                    max_attempts=int(h["max_attempts"]),
                    worker=h.get("worker") or None,
                    token=h.get("token") or None,
                    lease_until=float(lease) if lease else None,
                    error=h.get("error") or None,
                    result=json.loads(result) if result is not None else None,
                    runner=h.get("runner", "train"),
                )
            )
        return jobs

    def jobs(self, search: str | None = None) -> list[Job]:
        ids = self._call("read", lambda: self.client.zrange(f"{self.prefix}:ids", 0, -1))
        jobs = self._read_many([str(i) for i in ids])
        return [j for j in jobs if search is None or j.search == search]

    def unfinished(self) -> int:
        def count() -> int:
            pipe = self.client.pipeline(transaction=True)
            for key in ("ready", "delayed", "running"):
                pipe.zcard(f"{self.prefix}:{key}")
            return sum(int(n) for n in pipe.execute())

        return self._call("count", count)

    def close(self) -> None:
        self.client.close()
