//! Checks at build time that the target interpreter is one pytracker
//! supports, and gives the crate PyO3's version cfgs (`Py_3_12`, ...), which
//! select the object layout and error API of each CPython version.

use pyo3_build_config::{PythonImplementation, PythonVersion};

/// Oldest and newest CPython minor versions the hot path is written for.
const MIN: PythonVersion = PythonVersion {
    major: 3,
    minor: 10,
};
const MAX: PythonVersion = PythonVersion {
    major: 3,
    minor: 15,
};

fn main() {
    pyo3_build_config::use_pyo3_cfgs();
    let config = pyo3_build_config::get();
    if config.implementation() != PythonImplementation::CPython {
        panic!(
            "pytracker's Trackable type is written against CPython's object layout; \
             this build targets {}: build it with a CPython interpreter (PYO3_PYTHON)",
            config.implementation()
        );
    }
    if config.version() < MIN || config.version() > MAX {
        panic!(
            "pytracker supports CPython {MIN} to {MAX}; this build targets CPython {}: \
             build it with a supported interpreter (PYO3_PYTHON)",
            config.version()
        );
    }
}
