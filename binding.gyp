{
  "targets": [
    {
      "target_name": "graceful_listener",
      "sources": [
        "native/addon.cc",
        "native/handle.cc",
        "native/sock_diag.cc",
        "native/syn_gate.cc",
        "native/unix.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-missing-field-initializers"]
    }
  ]
}
