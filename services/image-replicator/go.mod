module github.com/orbit-workbench/orbit-controller/services/image-replicator

go 1.26.0

require github.com/orbit-workbench/orbit-controller/pkg v0.0.0

replace github.com/orbit-workbench/orbit-controller/pkg => ../../pkg
