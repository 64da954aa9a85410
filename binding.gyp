{
  "variables": {
    "ringwire_sab%": "<!(node -p \"process.env.RINGWIRE_SAB || 'auto'\")"
  },
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
        "addon/socket.cc",
        "addon/netns.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_CPP_EXCEPTIONS"],
      "cflags": ["-fvisibility=hidden", "-Wall", "-Wextra"],
      "cflags_cc": ["-fvisibility=hidden", "-Wall", "-Wextra"],
      "conditions": [
        ["ringwire_sab=='external-only'", { "defines": ["RINGWIRE_SAB_EXTERNAL_ONLY"] }],
        ["ringwire_sab=='v8'", { "defines": ["RINGWIRE_SAB_FORCE_V8"] }],
        ["ringwire_sab not in ('auto', 'external-only', 'v8')", {
          "defines": ["RINGWIRE_SAB_INVALID"]
        }]
      ]
    }
  ]
}
