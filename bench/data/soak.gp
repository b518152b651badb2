soak_ok = 1
soak_workers = 2
