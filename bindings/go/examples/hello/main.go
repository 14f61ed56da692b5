// Command hello runs Python code in a shmrepl engine and prints its output as
// the code produces it. The engine is the default one (started if none
// listens; $SHMREPL_SOCKET picks another socket).
//
//	go run ./examples/hello 'for i in range(3): print(i)'
package main

import (
	"fmt"
	"io"
	"os"

	"shmrepl.dev/shmrepl"
)

func main() {
	code := "print('hello from Python')\n"
	if len(os.Args) > 1 {
		code = os.Args[1] + "\n"
	}
	if err := run(code); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(code string) error {
	client, err := shmrepl.Connect(shmrepl.Options{})
	if err != nil {
		return err
	}
	defer client.Close()
	session, err := client.OpenSession()
	if err != nil {
		return err
	}
	defer session.Close()
	exec, err := session.Execute(shmrepl.ExecuteOptions{Code: code, Script: true})
	if err != nil {
		return err
	}
	defer exec.Close()
	reader, err := exec.Reader(shmrepl.StartOldest)
	if err != nil {
		return err
	}
	defer reader.Close()
	_, err = io.Copy(os.Stdout, reader.Output()) // stdout and stderr, in order
	return err
}
