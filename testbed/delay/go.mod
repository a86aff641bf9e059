module crowsnest.dev/testbed/delay

go 1.25
