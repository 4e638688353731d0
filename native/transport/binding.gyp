{
  "targets": [
    {
      "target_name": "baton_transport",
      "sources": [
        "cpp/addon.cc",
        "cpp/io_loop.cc",
        "cpp/handshake.cc",
        "cpp/sha256.cc",
        "cpp/rdma_addon.cc",
        "cpp/rdma_channel.cc",
        "cpp/rdma_fake.cc",
        "cpp/rdma_system.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "conditions": [
        ["OS=='linux'", { "libraries": ["-ldl", "-lpthread"] }],
        ["OS=='mac'", {
          "xcode_settings": {
            "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
            "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
            "MACOSX_DEPLOYMENT_TARGET": "11.0",
            "OTHER_CPLUSPLUSFLAGS": ["-O2"]
          }
        }]
      ]
    }
  ]
}
