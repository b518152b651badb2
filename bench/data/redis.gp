redis_ok = 1
