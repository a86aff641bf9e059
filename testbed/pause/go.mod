// Builds the pause binary: the process that holds each pod sandbox's namespaces on the
// testbed's real nodes (containerd's sandbox_image), as Kubernetes' own pause.c does.
module crowsnest.dev/testbed/pause

go 1.25.0
