"""`kubewright demo`: each add-on shown working in the local sim cluster, one step per add-on."""
