# The launch-latency chart of bench/run.sh: median per launcher (bars), the interquartile
# range (whiskers), p10 (black ticks) and the floor program's median (dashed line).
#     gnuplot -e "datafile='...'; floor='2.0'; output='docs/performance.svg'" bench/latency.gp
# datafile rows: "name" median p25 p75 p10 (milliseconds).
set terminal svg size 900,560 dynamic font "sans,12" background rgb "white"
set output output
set title "Launch latency to exec /usr/bin/true: median (bar), p25–p75 (whiskers), p10 (black tick); lower is better"
set xlabel "milliseconds"
set yrange [] reverse
set offsets 0, 0, 0.9, 0.6
set xrange [0:*]
set grid xtics lc rgb "#dddddd"
set border 3
set xtics nomirror
set ytics nomirror scale 0
set key off
f = floor + 0
set arrow from f, graph 0 to f, graph 1 nohead dt 2 lw 2 lc rgb "#c0392b" front
set label sprintf("floor (bench/floor.c) %.2f ms", f) at f, graph 1 offset 0.5, 0.7 tc rgb "#c0392b" front
color(name) = strstrt(name, "sandbox") == 1 ? 0x2a7ab0 : strstrt(name, "floor") == 1 ? 0x3a9a4a : 0x9a9a9a
plot datafile using 2:0:(0):2:($0 - 0.35):($0 + 0.35):(color(strcol(1))):ytic(1) \
       with boxxyerror fs solid 0.8 noborder lc rgb variable, \
     "" using 2:0:3:4 with xerrorbars pt -1 lc rgb "#333333", \
     "" using 5:($0 - 0.35):(0):(0.7) with vectors nohead lw 3 lc rgb "#111111", \
     "" using 4:0:(sprintf(" %.2f", $2)) with labels left font ",10"
