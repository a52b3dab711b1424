# The layers of src/ (one folder each), bottom to top, and what each one uses directly.
# A layer may include and link the layers it uses and whatever those use, nothing else:
# the build gives each layer an include root holding only those folders (see
# nimbus_layer_root), so an include of a layer above fails to compile. docs/layers.md
# explains the table. Read by the root CMakeLists.txt and by the check scripts in cmake/.
set(NIMBUS_LAYERS common config mem cpu backends sandbox devices machine vmm host cloud cli)

set(NIMBUS_LAYER_USES_common "")             # status, log, sizes, HTTP, state I/O
set(NIMBUS_LAYER_USES_config common)         # typed VM configuration and its parsers
set(NIMBUS_LAYER_USES_mem common)            # the bus and guest RAM
set(NIMBUS_LAYER_USES_cpu mem)               # harts, interpreter, JIT
set(NIMBUS_LAYER_USES_backends config)       # disks, consoles, networks on the host
# The VMM's confinement (uid drop, seccomp). Its allowlist follows what the backends do
# on the host, and its tests run them under the filter.
set(NIMBUS_LAYER_USES_sandbox backends)
set(NIMBUS_LAYER_USES_devices mem backends)  # device models (virtio over the backends)
set(NIMBUS_LAYER_USES_machine cpu devices)   # boards: harts + devices + boot
set(NIMBUS_LAYER_USES_vmm machine sandbox)   # one VM process: the API and its machine
# nimbusd: never the emulator (cpu, devices, machine, vmm). It creates and resizes disk
# images and switch directories (backends) and writes the VMM's configuration file
# (config, through backends).
set(NIMBUS_LAYER_USES_host backends sandbox)
set(NIMBUS_LAYER_NEVER_host cpu devices machine vmm)  # checked by nimbus_check_layer_table
# The control plane (nimbus-cloud): the EC2 API, its store, the scheduler; it drives hosts
# through nimbusd's API (host's client), never an emulator.
set(NIMBUS_LAYER_USES_cloud host)
set(NIMBUS_LAYER_NEVER_cloud cpu devices machine vmm)  # checked by nimbus_check_layer_table
set(NIMBUS_LAYER_USES_cli vmm host cloud)    # the `nimbus` binary: dispatches to all

# Folders that belong to their layer alone: no other layer includes them.
set(NIMBUS_PRIVATE_FOLDERS cpu/jit)

# `out` = the layers `layer` may include: itself and, transitively, what it uses.
function(nimbus_layer_closure layer out)
  set(result ${layer})
  foreach(used IN LISTS NIMBUS_LAYER_USES_${layer})
    nimbus_layer_closure(${used} sub)
    list(APPEND result ${sub})
  endforeach()
  list(REMOVE_DUPLICATES result)
  set(${out} ${result} PARENT_SCOPE)
endfunction()

# Every layer uses only layers listed before it (so the table has no cycle), and none
# reaches a layer of its NIMBUS_LAYER_NEVER_ list.
function(nimbus_check_layer_table)
  set(seen "")
  foreach(layer IN LISTS NIMBUS_LAYERS)
    foreach(used IN LISTS NIMBUS_LAYER_USES_${layer})
      if(NOT used IN_LIST seen)
        message(FATAL_ERROR "cmake/layers.cmake: ${layer} uses ${used}, which is not a layer below it")
      endif()
    endforeach()
    list(APPEND seen ${layer})
    set(reached "")
    foreach(used IN LISTS NIMBUS_LAYER_USES_${layer})
      nimbus_layer_closure(${used} sub)
      list(APPEND reached ${sub})
    endforeach()
    foreach(never IN LISTS NIMBUS_LAYER_NEVER_${layer})
      if(never IN_LIST reached)
        message(FATAL_ERROR "cmake/layers.cmake: ${layer} must never reach ${never}, but does")
      endif()
    endforeach()
  endforeach()
endfunction()
