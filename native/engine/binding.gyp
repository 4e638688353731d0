{
  # The engine addon. gyp has no globs: every .cc under cpp/ and cpp/kernels/ is listed here
  # (the kernels files are owned by the kernels work and may be added to this list).
  "targets": [
    {
      "target_name": "baton_engine",
      "sources": [
        "cpp/addon.cc",
        "cpp/bandwidth.cc",
        "cpp/engine.cc",
        "cpp/gguf.cc",
        "cpp/kv_pool.cc",
        "cpp/sampler.cc",
        "cpp/kernels/kernels.cc",
        "cpp/kernels/kernels_scalar.cc",
        "cpp/kernels/kernels_avx2.cc",
        "cpp/kernels/kernels_avx512.cc",
        "cpp/kernels/kernels_neon.cc",
        "cpp/kernels/thread_pool.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "cpp"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NODE_ADDON_API_DISABLE_DEPRECATED",
        "NAPI_CPP_EXCEPTIONS"
      ],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++1y", "-std=gnu++17"],
      "cflags": ["-O3"],
      "cflags_cc": ["-std=c++17", "-O3", "-fexceptions"],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
        "CLANG_CXX_LIBRARY": "libc++",
        "MACOSX_DEPLOYMENT_TARGET": "11.0",
        "GCC_OPTIMIZATION_LEVEL": "3"
      },
      "msvs_settings": {
        "VCCLCompilerTool": { "ExceptionHandling": 1, "AdditionalOptions": ["/std:c++17"] }
      }
    }
  ]
}
