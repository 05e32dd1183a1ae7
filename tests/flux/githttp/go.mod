module moor.dev/tests/flux/githttp

go 1.26
