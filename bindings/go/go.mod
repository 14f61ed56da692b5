module shmrepl.dev/shmrepl

go 1.19
