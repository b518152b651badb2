cluster_ok = 1
cluster_ratio2 = "0.68"
cluster_ratio3 = "0.57"
cluster_lat = "publish -> webhook at 200 msg/s, 3 pods: p50 2 ms, p99 16 ms"
