{
  "targets": [
    {
      "target_name": "ringwire",
      "sources": [
        "addon/addon.cc",
        "addon/args.cc",
        "addon/fd.cc",
        "addon/region.cc",
        "addon/shared_buffer.cc",
        "addon/eventfd.cc",
        "addon/poller.cc",
        "addon/socket.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_CPP_EXCEPTIONS"],
      "cflags": ["-fvisibility=hidden", "-Wall", "-Wextra"],
      "cflags_cc": ["-fvisibility=hidden", "-Wall", "-Wextra"]
    }
  ]
}
