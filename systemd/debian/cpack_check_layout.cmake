# A CPACK_PRE_BUILD_SCRIPTS script for the .deb: the staged tree must be a Debian layout
# (/usr, /etc, /lib/systemd), or cpack stops here instead of making a package that installs
# but cannot work (a conffile dpkg does not know, a bus policy dbus-daemon does not read).
set(root "${CPACK_TEMPORARY_DIRECTORY}")
file(GLOB_RECURSE files LIST_DIRECTORIES false RELATIVE "${root}" "${root}/*")
set(problems "")
foreach(f IN LISTS files)
  if(f MATCHES "^usr/local/" OR NOT f MATCHES "^(usr/|etc/portier/|lib/systemd/system/)")
    string(APPEND problems "\n  /${f}: outside /usr, /etc/portier and /lib/systemd/system")
  endif()
endforeach()
foreach(f usr/sbin/portierd usr/bin/portierctl etc/portier/policy.toml
          usr/share/dbus-1/system.d/org.portier.Firewall1.conf
          usr/share/polkit-1/actions/org.portier.Firewall1.policy)
  if(NOT EXISTS "${root}/${f}")
    string(APPEND problems "\n  /${f}: missing")
  endif()
endforeach()
file(GLOB units "${root}/lib/systemd/system/portierd.service" "${root}/usr/lib/systemd/system/portierd.service")
if(NOT units)
  string(APPEND problems "\n  portierd.service: missing from /lib/systemd/system and /usr/lib/systemd/system")
else()
  list(GET units 0 unit)
  file(STRINGS "${unit}" exec_start REGEX "^ExecStart=")
  if(NOT exec_start MATCHES "^ExecStart=/usr/sbin/portierd ")
    string(APPEND problems "\n  portierd.service: '${exec_start}' does not start /usr/sbin/portierd")
  endif()
endif()
if(problems)
  message(FATAL_ERROR "portier: refusing to package this tree (${root}):${problems}\n"
          "Absolute install directories (CMAKE_INSTALL_*DIR, PORTIER_*DIR) given at configure "
          "time override the package's /usr; leave them relative.")
endif()
message(STATUS "portier: package layout checked: ${CMAKE_CURRENT_LIST_FILE}")
