module crowsnest.dev/bench/gopinger

go 1.25
