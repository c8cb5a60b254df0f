{
  "targets": [
    {
      "target_name": "krsync_times",
      "sources": ["times.c", "copy.c", "stat.c"],
      "cflags": ["-std=c99", "-Wall", "-Wextra", "-D_POSIX_C_SOURCE=200809L"],
      "xcode_settings": { "OTHER_CFLAGS": ["-std=c99", "-Wall", "-Wextra"], "MACOSX_DEPLOYMENT_TARGET": "10.13" }
    }
  ]
}
