{
  # One poller backend per build: epoll on Linux, kqueue on macOS and the BSDs, and kqueue
  # on Linux too when MOB_KQUEUE_PREFIX names a libkqueue install (DIR/include/kqueue/sys/
  # event.h, DIR/lib/libkqueue.so), e.g. MOB_KQUEUE_PREFIX=/opt/libkqueue.
  'variables': {
    'mob_kqueue_prefix%': '<!(node -p "process.env.MOB_KQUEUE_PREFIX || \'\'")',
    # Node's headers beside the node that runs the build (nvm, Homebrew, a tarball install):
    # DIR/bin/node has DIR/include/node with uv.h. npm names that node in npm_node_execpath.
    'mob_node_include%': '<!(node -p "require(\'path\').join(require(\'path\').dirname(process.env.npm_node_execpath || process.env.NODE || process.execPath), \'..\', \'include\', \'node\')")',
  },
  'targets': [
    {
      'target_name': 'mob',
      'sources': [
        'native/addon.cc',
        'native/args.cc',
        'native/env_owner.cc',
        'native/errors.cc',
        'native/poller.cc',
        'native/selector_common.cc',
        'native/socket_bindings.cc',
        'native/sockets.cc',
      ],
      'include_dirs': [
        '<!(node -p "require(\'node-addon-api\').include_dir")',
        # After node-gyp's own headers: only a fallback for uv.h.
        '<(mob_node_include)',
      ],
      'defines': [
        'NAPI_VERSION=8',
        'NAPI_DISABLE_CPP_EXCEPTIONS',
        # A call into the addon while a worker is being terminated cannot throw: without
        # this, node-addon-api turns that into a fatal error that aborts the process.
        'NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS',
      ],
      'cflags!': ['-Wno-unused-parameter'],
      'cflags_cc!': ['-std=gnu++17', '-Wno-unused-parameter'],
      'cflags_cc': ['-std=c++20', '-Wall', '-Wextra', '-fno-exceptions'],
      'conditions': [
        ['OS=="linux" and mob_kqueue_prefix==""', {
          'sources': ['native/selector_epoll.cc'],
        }],
        ['OS=="linux" and mob_kqueue_prefix!=""', {
          'sources': ['native/selector_kqueue.cc'],
          'defines': ['MOB_USE_KQUEUE'],
          'include_dirs': ['<(mob_kqueue_prefix)/include/kqueue'],
          'libraries': [
            '-L<(mob_kqueue_prefix)/lib',
            '-lkqueue',
            '-lpthread',
            '-Wl,-rpath,<(mob_kqueue_prefix)/lib',
          ],
        }],
        ['OS=="mac" or OS=="freebsd" or OS=="openbsd" or OS=="netbsd"', {
          'sources': ['native/selector_kqueue.cc'],
          'defines': ['MOB_USE_KQUEUE'],
        }],
        ['OS=="mac"', {
          'xcode_settings': {
            'CLANG_CXX_LANGUAGE_STANDARD': 'c++20',
            'CLANG_CXX_LIBRARY': 'libc++',
            'MACOSX_DEPLOYMENT_TARGET': '10.15',
            'GCC_ENABLE_CPP_EXCEPTIONS': 'NO',
            'OTHER_CPLUSPLUSFLAGS': ['-std=c++20', '-Wall', '-Wextra'],
            'WARNING_CFLAGS!': ['-Wno-unused-parameter'],
          },
        }],
      ],
    },
  ],
}
