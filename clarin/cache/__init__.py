from clarin.cache.cache import Cache, leads_key
from clarin.cache.redis_client import RedisHandle

__all__ = ["Cache", "RedisHandle", "leads_key"]
