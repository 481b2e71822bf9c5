//! End-to-end suites: the `ctdiag` binary run on bundles, asserting exit codes and the JSON contract.
