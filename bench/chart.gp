# bench/results.png from the data files that bench/report.pl writes
# (bench/data/*.dat). Run from bench/: gnuplot chart.gp

set terminal pngcairo size 1500,1350 font "DejaVu Sans,10"
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

set multiplot layout 3,2 title "ngx\\_omnibus\\_module benchmarks (medians; see bench/RESULTS.md)" font ",13"

set title "1. Publish throughput (wrk -t1 -c32, 2 workers, 100 topics)"
set xlabel "JSON body size"
set ylabel "requests/s"
plot "data/publish.dat" using 2:xtic(1) title "omnibus" lc rgb "#1f77b4", \
     "" using 3 title "omnibus, json off" lc rgb "#9ecae1", \
     "" using 4 title "return 202 (ceiling)" lc rgb "#aaaaaa", \
     "" using 5 title "nchan publisher" lc rgb "#ff7f0e"

set title "1. Publish cost: nginx worker CPU per request"
set ylabel "CPU microseconds / request"
set format y "%.1f"
plot "data/publish-cpu.dat" using 2:xtic(1) title "omnibus" lc rgb "#1f77b4", \
     "" using 3 title "omnibus, json off" lc rgb "#9ecae1", \
     "" using 4 title "return 202" lc rgb "#aaaaaa", \
     "" using 5 title "nchan publisher" lc rgb "#ff7f0e"
set format y "%.0f"

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

unset multiplot
