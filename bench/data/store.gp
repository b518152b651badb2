store_ok = 1
