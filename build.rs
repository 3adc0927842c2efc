// Lets the binary find llama.cpp's shared libraries: in the build tree (the folder the
// llama-cpp-sys-2 build installed them to), or beside an installed copy ($ORIGIN, $ORIGIN/../lib).
fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let mut dirs = vec!["$ORIGIN".to_string(), "$ORIGIN/../lib".to_string()];
    if let Ok(root) = std::env::var("DEP_LLAMA_ROOT") {
        dirs.push(format!("{root}/lib"));
    }
    if os == "linux" || os == "freebsd" {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dirs.join(":"));
    } else if os == "macos" {
        println!("cargo:rustc-link-arg=-Wl,-rpath,@executable_path");
    }
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=DEP_LLAMA_ROOT");
}
