# bench/results.png from the data files that bench/report.pl writes
# (bench/data/*.dat). Run from bench/: gnuplot chart.gp

set terminal pngcairo size 1500,3600 font "DejaVu Sans,10"
set output "results.png"

set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set yrange [0:*]
set format y "%.0f"
set key top right
set offsets 0, 0, graph 0.12, 0

# section 6 (the soak) only when report.pl wrote its data
soak_ok = 0
soak_workers = 0
if (system("test -s data/soak.gp && echo 1 || echo 0") eq "1") { load "data/soak.gp" }
# section 7 (Kafka) likewise
kafka_ok = 0
if (system("test -s data/kafka.gp && echo 1 || echo 0") eq "1") { load "data/kafka.gp" }
# section 8 (durable store) likewise
store_ok = 0
if (system("test -s data/store.gp && echo 1 || echo 0") eq "1") { load "data/store.gp" }
# section 9 (Redis) likewise
redis_ok = 0
if (system("test -s data/redis.gp && echo 1 || echo 0") eq "1") { load "data/redis.gp" }
# section 10 (cluster) likewise
cluster_ok = 0
cluster_ratio2 = "n/a"
cluster_ratio3 = "n/a"
cluster_lat = ""
if (system("test -s data/cluster.gp && echo 1 || echo 0") eq "1") { load "data/cluster.gp" }

set multiplot layout 8,2 title "ngx\\_omnibus\\_module benchmarks (medians; see bench/RESULTS.md)" font ",13"

# 1: one cluster per body size and shape (data/publish.dat: size, shape,
# then the four targets); padded = {"seq":0,"pad":"xxx..."}, orders =
# bench/gen-orders.pl's realistic documents
set title "1. Publish throughput: padded vs realistic (orders) JSON bodies (wrk -t1 -c32, 2 workers)"
set xlabel ""
set ylabel "requests/s"
set offsets 0, 0, graph 0.25, 0
plot "data/publish.dat" using 3:xtic(stringcolumn(1)."\n".stringcolumn(2)) title "omnibus" lc rgb "#1f77b4", \
     "" using 4 title "omnibus, json off" lc rgb "#9ecae1", \
     "" using 5 title "return 202 (ceiling)" lc rgb "#aaaaaa", \
     "" using 6 title "nchan publisher" lc rgb "#ff7f0e"

set title "1. Publish cost: nginx worker CPU per request, padded vs orders bodies"
set ylabel "CPU microseconds / request"
set format y "%.1f"
plot "data/publish-cpu.dat" using 3:xtic(stringcolumn(1)."\n".stringcolumn(2)) title "omnibus" lc rgb "#1f77b4", \
     "" using 4 title "omnibus, json off" lc rgb "#9ecae1", \
     "" using 5 title "return 202" lc rgb "#aaaaaa", \
     "" using 6 title "nchan publisher" lc rgb "#ff7f0e"
set format y "%.0f"
set offsets 0, 0, graph 0.12, 0

set title "2. End to end: publish -> webhook (1 KiB)"
set xlabel ""
set ylabel "messages/s"
plot "data/e2e.dat" using 2:xtic(1) notitle lc rgb "#2ca02c"

set title "3. Fan-out: 1 publisher, 1000 SSE subscribers"
set ylabel "deliveries/s"
set y2label "worker CPU s per 100k deliveries"
set y2tics
set y2range [0:*]
set ytics nomirror
set key top center
plot "data/fanout.dat" using 2:xtic(1) title "deliveries/s (left)" lc rgb "#1f77b4", \
     "" using 3 axes x1y2 title "CPU s / 100k deliveries (right)" lc rgb "#d62728"
unset y2tics
unset y2label
set ytics mirror
set key top left

set title "4. Shared memory per queued message"
set xlabel "payload"
set ylabel "bytes"
set logscale y
set yrange [50:*]
set format y "%.0f"
plot "data/memory.dat" using 2:xtic(1) title "payload" lc rgb "#aaaaaa", \
     "" using 3 title "zone bytes per queued message" lc rgb "#1f77b4", \
     "" using 0:3:(sprintf("%.0f", $3)) with labels offset 2.2,0.7 notitle
unset logscale y
set yrange [0:*]

set title "5. Scaling: omnibus publish, 1 KiB"
set xlabel ""
set ylabel "requests/s"
plot "data/scaling.dat" using 2:xtic(1) notitle lc rgb "#9467bd"

# 6. soak: minutes on x; per worker i the columns 6+4(i-1) .. 9+4(i-1) of
# data/soak.dat are RSS MiB, RssAnon MiB, fds, sockets
set style data linespoints
set xlabel "minute"
set xtics autofreq
set offsets 0, 0, graph 0.45, 0
set key top left
wcol(i, k) = 6 + 4 * (i - 1) + k

set title "6. Soak: memory (open loop at half the maximum rate)"
set ylabel "MiB (worker RSS, RssAnon)"
set y2range [0:*]
set ytics nomirror
if (soak_ok) {
    set y2label "zone used, MiB"
    set y2tics
    plot for [i=1:soak_workers] "data/soak.dat" using 1:wcol(i, 0) \
             title sprintf("worker %d VmRSS", i) pt 7 ps 0.6 lc i, \
         for [i=1:soak_workers] "" using 1:wcol(i, 1) \
             title sprintf("worker %d RssAnon", i) dt 2 pt 6 ps 0.6 lc i, \
         "" using 1:2 axes x1y2 title "zone used (right)" lw 2 pt 5 ps 0.6 lc rgb "#d62728"
} else {
    set label 1 "no soak data (see RESULTS.md)" at graph 0.5, 0.5 center
    plot [0:1][0:1] 2 notitle
    unset label 1
}

set title "6. Soak: file descriptors, connections, queue"
set ylabel "fds, sockets, connections"
if (soak_ok) {
    set y2label "queued + in flight"
    plot for [i=1:soak_workers] "data/soak.dat" using 1:wcol(i, 2) \
             title sprintf("worker %d fds", i) pt 7 ps 0.6 lc i, \
         for [i=1:soak_workers] "" using 1:wcol(i, 3) \
             title sprintf("worker %d sockets", i) dt 2 pt 6 ps 0.6 lc i, \
         "" using 1:4 title "active connections" pt 9 ps 0.6 lc rgb "#2ca02c", \
         "" using 1:3 axes x1y2 title "queued (right)" lw 2 pt 5 ps 0.6 lc rgb "#d62728"
} else {
    set label 1 "no soak data (see RESULTS.md)" at graph 0.5, 0.5 center
    plot [0:1][0:1] 2 notitle
    unset label 1
}

# 7. Kafka: bars again
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
unset y2tics
unset y2label
set ytics mirror
set xlabel ""
set xtics autofreq
set offsets 0, 0, graph 0.12, 0
set yrange [0:*]
set key top right

set title "7. Kafka: 1 KiB records, acks=all, idempotence, gzip (3-broker mock; publish rates with wrk)"
set ylabel "records/s"
if (kafka_ok) {
    plot "data/kafka.dat" using 2:xtic(1) notitle lc rgb "#8c564b", \
         "" using 0:2:(sprintf("%.0f", $2)) with labels offset 0,0.7 notitle
} else {
    set label 1 "no Kafka data (see RESULTS.md)" at graph 0.5, 0.5 center
    plot [0:1][0:1] 2 notitle
    unset label 1
}

set title "7. Kafka latency: histograms at half the drain rate; serial: one at a time"
set ylabel "ms"
set format y "%.1f"
if (kafka_ok) {
    plot "data/kafka-lat.dat" using 2:xtic(1) title "p50" lc rgb "#17becf", \
         "" using 3 title "p99" lc rgb "#d62728"
} else {
    set label 1 "no Kafka data (see RESULTS.md)" at graph 0.5, 0.5 center
    plot [0:1][0:1] 2 notitle
    unset label 1
}

# 8. durable store: bars again (the Kafka panels left the style so)
set format y "%.0f"
set title "8. Durable store: publish 1 KiB (wrk -c32; sync/async: omnibus\\_store) vs pgbench -c32, 1 INSERT per commit"
set ylabel "requests/s (pgbench: transactions/s)"
if (store_ok) {
    plot "data/store.dat" using 2:xtic(1) notitle lc rgb "#7f7f7f", \
         "" using 0:2:(sprintf("%.0f", $2)) with labels offset 0,0.7 notitle
} else {
    set label 1 "no store data (see RESULTS.md)" at graph 0.5, 0.5 center
    plot [0:1][0:1] 2 notitle
    unset label 1
}

set title "8. Store, mode=sync: commit latency (histograms), publish latency; full speed vs half rate"
set ylabel "ms"
set format y "%.1f"
if (store_ok) {
    # the issue's goal: p99 <= 10 ms at half the maximum rate (publish, half)
    set arrow 1 from graph 0, first 10 to graph 1, first 10 nohead dt 2 lc rgb "#555555"
    set key top left
    plot "data/store-lat.dat" using 2:xtic(1) title "p50" lc rgb "#17becf", \
         "" using 3 title "p99" lc rgb "#d62728", \
         NaN with lines dt 2 lc rgb "#555555" title "goal: p99 <= 10 ms, half rate"
    unset arrow 1
} else {
    set label 1 "no store data (see RESULTS.md)" at graph 0.5, 0.5 center
    plot [0:1][0:1] 2 notitle
    unset label 1
}

# 9. Redis: bars, as 8
set format y "%.0f"
set key top right
set title "9. Redis: publish 1 KiB, a distinct Idempotency-Key each (wrk -c32): zone alone vs + Redis dedup; nchan"
set ylabel "requests/s"
if (redis_ok) {
    plot "data/redis.dat" using 2:xtic(1) notitle lc rgb "#e377c2", \
         "" using 0:2:(sprintf("%.0f", $2)) with labels offset 0,0.7 notitle
} else {
    set label 1 "no Redis data (see RESULTS.md)" at graph 0.5, 0.5 center
    plot [0:1][0:1] 2 notitle
    unset label 1
}

set title "9. Redis: fan-out across pods (publish on pod A, SSE subscribers on pods B and C)"
set ylabel "deliveries/s"
if (redis_ok) {
    set y2label "CPU s per 100k deliveries"
    set y2tics
    set y2range [0:*]
    set ytics nomirror
    set key below horizontal
    plot "data/redis-fanout.dat" using 2:xtic(1) title "deliveries/s (left)" lc rgb "#1f77b4", \
         "" using 3 axes x1y2 title "nginx CPU s / 100k (right)" lc rgb "#d62728", \
         "" using 4 axes x1y2 title "redis-server CPU s / 100k (right)" lc rgb "#ff9896"
    unset y2tics
    unset y2label
    set ytics mirror
} else {
    set label 1 "no Redis data (see RESULTS.md)" at graph 0.5, 0.5 center
    plot [0:1][0:1] 2 notitle
    unset label 1
}

# 10. cluster: data/cluster.dat is the pod count, the accepted msg/s, then
# the CPU split in % of one core (wrk front pods redis pg kafka recv irq
# other idle)
set format y "%.0f"
set key inside top right
set xlabel ""
set title sprintf("10. Cluster: accepted msg/s through the front (1 KiB, a key each); 2 pods / 1 pod %s x, 3 / 1 %s x", cluster_ratio2, cluster_ratio3)
set ylabel "messages/s"
if (cluster_ok) {
    set label 2 cluster_lat at graph 0.02, graph 0.93 left front
    plot "data/cluster.dat" using 2:xtic(1) notitle lc rgb "#bcbd22", \
         "" using 0:2:(sprintf("%.0f", $2)) with labels offset 0,0.7 notitle
    unset label 2
} else {
    set label 1 "no cluster data (see RESULTS.md)" at graph 0.5, 0.5 center
    plot [0:1][0:1] 2 notitle
    unset label 1
}

set title "10. Cluster: where the 2 cores go during those runs (CPU % of one core, medians)"
set ylabel "% of one core"
if (cluster_ok) {
    set style histogram rowstacked
    set boxwidth 0.6
    set key outside right vertical
    plot "data/cluster.dat" using 3:xtic(1) title "wrk" lc rgb "#7f7f7f", \
         "" using 4 title "front nginx" lc rgb "#17becf", \
         "" using 5 title "pods" lc rgb "#1f77b4", \
         "" using 6 title "redis-server" lc rgb "#d62728", \
         "" using 7 title "PostgreSQL" lc rgb "#9467bd", \
         "" using 8 title "Kafka mock" lc rgb "#8c564b", \
         "" using 9 title "webhook receiver" lc rgb "#2ca02c", \
         "" using 10 title "interrupts + softirqs" lc rgb "#dbdb8d", \
         "" using 11 title "other processes" lc rgb "#ff7f0e", \
         "" using 12 title "idle" lc rgb "#eeeeee"
} else {
    set label 1 "no cluster data (see RESULTS.md)" at graph 0.5, 0.5 center
    plot [0:1][0:1] 2 notitle
    unset label 1
}

unset multiplot
