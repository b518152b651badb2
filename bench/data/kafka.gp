kafka_ok = 1
