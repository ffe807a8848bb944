module wsfleet.local/bench/loadgen

go 1.21
