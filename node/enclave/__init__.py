"""The emulated enclave (DESIGN.md section 7): iApp bundles, the sandboxed runner, and sealing.

`bundle` makes and checks deterministic iApp bundles, `runner.run_enclave` runs one task, `sandbox` is the
process isolation it uses, `outputs` turns IEXEC_OUT into a digest and an archive, and `sealing` holds the
encryption around datasets, released keys and results. A real TEE backend would replace `runner` and
`sandbox` behind the same `run_enclave` interface.
"""
