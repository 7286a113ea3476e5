"""Django settings for the echo ceiling (bench/echo_app.py): no apps, no database, only a channel layer.

With REDIS_URL set the layer is channels-redis on that server (under its own key prefix, so it
never meets the broker's groups); without it, the broker's in-memory layer. Capacity matches the
broker's (CHANNEL_CAPACITY, default 1000), so both drop or block at the same depth.

Two redis-py 8 defaults are changed, because a ceiling that drops messages is no ceiling: the
pool is made larger than 100 connections (redis-py raises MaxConnectionsError rather than wait
when a thousand consumers call the layer at once), and the socket timeout is raised above the
layer's blocking read (see REDIS_SOCKET_TIMEOUT).
"""

import os

SECRET_KEY = "bench-echo-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS: list[str] = []
DATABASES: dict = {}
USE_TZ = True
LOGGING_CONFIG = None

REDIS_URL = os.environ.get("REDIS_URL", "")
CAPACITY = int(os.environ.get("CHANNEL_CAPACITY", "1000"))
REDIS_POOL = int(os.environ.get("BENCH_ECHO_REDIS_POOL", "2000"))
# Above channels-redis's 5 s BZPOPMIN: at redis-py 8's default of 5 s the wait for an idle channel
# sometimes times out on the socket first, and the consumer dies with redis TimeoutError.
REDIS_SOCKET_TIMEOUT = 10
REDIS_HOST = {"address": REDIS_URL, "max_connections": REDIS_POOL, "socket_timeout": REDIS_SOCKET_TIMEOUT}
# pubsub: the layer the broker uses (Redis pub/sub, one subscriber connection per process);
# core: lists in Redis, one receive loop per process, to compare the two designs.
if REDIS_URL and os.environ.get("BENCH_ECHO_REDIS_LAYER", "pubsub") == "pubsub":
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                                  "CONFIG": {"hosts": [REDIS_HOST], "prefix": "bench-echo"}}}
elif REDIS_URL:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                                  "CONFIG": {"hosts": [REDIS_HOST], "capacity": CAPACITY, "prefix": "bench-echo"}}}
else:
    # The broker's own in-memory layer (Channels' one, sweeping expired entries once a second).
    CHANNEL_LAYERS = {"default": {"BACKEND": "broker_site.channel_layers.ThrottledInMemoryChannelLayer",
                                  "CONFIG": {"capacity": CAPACITY}}}
