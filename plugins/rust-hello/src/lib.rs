//! A pmhost task plugin in Rust: the C ABI of include/pmhost.h, spelled
//! out by hand (no crates, no bindgen).  Build it with
//! `cargo build --release --offline`; the plugin is
//! target/release/libpmhost_rust_hello.so.

use std::ffi::{c_char, c_int, c_void, CStr};


/// PMHOST_ABI_VERSION and PMHOST_MAGIC of the pmhost.h this mirrors.
const PMHOST_ABI_VERSION: u32 = 1;
const PMHOST_MAGIC: u32 = 0x706d_6831;
const PM_CONTINUE: c_int = 0;
const PM_LOG_INFO: c_int = 1;

/// struct pm_plugin_magic
#[repr(C)]
pub struct PmPluginMagic {
    magic: u32,
    abi_version: u32,
    magic_size: u32,
    pointer_size: u32,
    host_version: *const c_char,
}

// The raw pointer is a static string: sharing it is safe.
unsafe impl Sync for PmPluginMagic {}

/// The mark PMHOST_PLUGIN would define in C.
#[no_mangle]
pub static pmhost_plugin_magic: PmPluginMagic = PmPluginMagic {
    magic: PMHOST_MAGIC,
    abi_version: PMHOST_ABI_VERSION,
    magic_size: std::mem::size_of::<PmPluginMagic>() as u32,
    pointer_size: std::mem::size_of::<*const c_void>() as u32,
    host_version: b"0.1.0\0".as_ptr() as *const c_char,
};

/// struct pm_host_api: the host's functions, in header order.  Rust has
/// no stable C varargs, so it logs through log_str (pm_log_str() in C)
/// and never calls vlog.
#[repr(C)]
pub struct PmHostApi {
    size: u32,
    slot: extern "C" fn(*const PmWorker) -> c_int,
    title: extern "C" fn(*const PmWorker) -> *const c_char,
    calls: extern "C" fn(*const PmWorker) -> u64,
    params: extern "C" fn(*const PmWorker) -> *const c_char,
    stopping: extern "C" fn(*const PmWorker) -> c_int,
    vlog: *const c_void,
    log_str: extern "C" fn(*mut PmWorker, c_int, *const c_char),
}

/// struct pm_worker: only its first member is the plugin's to touch.
#[repr(C)]
pub struct PmWorker {
    api: *const PmHostApi,
}

/// pm_log_str(): one line in the task's log.
fn log(w: &mut PmWorker, level: c_int, text: &str) {
    let mut bytes: Vec<u8> = text.bytes().filter(|&b| b != 0).collect();
    bytes.push(0);
    let api = unsafe { &*w.api };
    (api.log_str)(w, level, bytes.as_ptr() as *const c_char);
}

struct State {
    greeting: String,
}

#[no_mangle]
pub extern "C" fn work_init(w: *mut PmWorker, state: *mut *mut c_void) -> c_int {
    let w = unsafe { &*w };
    let params = unsafe { CStr::from_ptr(((*w.api).params)(w)) };
    let greeting = if params.to_string_lossy().contains("\"greeting\"") {
        "hello from params".to_string()
    } else {
        "hello".to_string()
    };
    let boxed = Box::new(State { greeting });
    unsafe { *state = Box::into_raw(boxed) as *mut c_void };
    0
}

#[no_mangle]
pub extern "C" fn work(w: *mut PmWorker, state: *mut c_void) -> c_int {
    let w = unsafe { &mut *w };
    let st = unsafe { &*(state as *const State) };
    let api = unsafe { &*w.api };
    let text = format!(
        "{} from slot {}, call {}",
        st.greeting,
        (api.slot)(w),
        (api.calls)(w) + 1
    );
    log(w, PM_LOG_INFO, &text);
    PM_CONTINUE
}

#[no_mangle]
pub extern "C" fn work_fini(_w: *mut PmWorker, state: *mut c_void) {
    if !state.is_null() {
        drop(unsafe { Box::from_raw(state as *mut State) });
    }
}
