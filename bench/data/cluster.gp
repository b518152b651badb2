cluster_ok = 1
cluster_ratio2 = "0.63"
cluster_ratio3 = "0.51"
cluster_lat = "publish -> webhook at 200 msg/s, 3 pods: p50 1 ms, p99 16 ms"
