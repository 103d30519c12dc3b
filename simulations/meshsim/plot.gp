# Dissemination curves from `meshsim ... --curve`: the share of nodes that know
# of a crash (marked dead) or of a join (alive) against seconds since it.
# gnuplot -e "crash='crash.csv'; join='join.csv'; out='mesh.png'" plot.gp
set datafile separator ','
set terminal pngcairo size 900,520 font ',11'
set output out
set title 'ndo membership, simulated N=1000, 1% loss'
set xlabel 'seconds since the event'
set ylabel 'share of nodes that know'
set yrange [0:1.02]
set key bottom right
set grid
plot crash every ::1 using 2:3 with lines lw 2 title 'crash: marked dead', \
     join every ::1 using 2:3 with lines lw 2 title 'join: known alive'
