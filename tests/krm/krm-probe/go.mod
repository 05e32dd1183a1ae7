module moor.dev/tests/krm/krm-probe

go 1.26
