// Links libshmrepl.so and records its directory as an rpath, so tests, examples and
// doctests run without LD_LIBRARY_PATH. The directory: $SHMREPL_LIB_DIR, else the
// repository's build/lib.
use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SHMREPL_LIB_DIR");
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let dir = match env::var_os("SHMREPL_LIB_DIR") {
        Some(d) if !d.is_empty() => manifest.join(d),
        _ => manifest.join("../../build/lib"),
    };
    // An rpath must be absolute.
    let dir = dir.canonicalize().unwrap_or(dir);
    if !dir.join("libshmrepl.so").exists() {
        println!(
            "cargo:warning=libshmrepl.so is not in {}: build the C library first \
             (cmake --build build --target shmrepl) or set SHMREPL_LIB_DIR",
            dir.display()
        );
    }
    println!("cargo:rustc-link-search=native={}", dir.display());
    println!("cargo:rustc-link-lib=dylib=shmrepl");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
    // For the tests: where the engine built next to this library lives.
    println!("cargo:rustc-env=SHMREPL_LINKED_LIB_DIR={}", dir.display());
    // For crates that build on this one (links = "shmrepl").
    println!("cargo:lib_dir={}", dir.display());
}
