/** VirtualMachine manifests → desired VMs: sizes in KiB, disk paths and targets, NIC defaults, the cloud-init seed. */
import type { DesiredState } from '../../../manifest/index.js';
import type { CpuMode, GraphicsType } from '../../../model/definitions.js';
import type { VirtualMachineSpec } from '../../../manifest/types.generated.js';
import { canonicalFragment, fragOf } from '../../../libvirt/xml/extra-devices.js';
import { diskBus, parseSize } from '../../../manifest/index.js';
import { desiredBase } from '../../core/resource.js';
import type { BuildContext } from '../../core/kind.js';
import { diskTarget } from './define.js';
import { cloudInitConfig, existingSeedConfig } from './seed.js';
import type { DesiredVm, DiskBus, RestartPolicy, VmBoot, VmConfig } from './types.js';

export function buildVms(state: DesiredState, ctx: BuildContext): DesiredVm[] {
  return state.vms.map((vm) => {
    const busCounters = new Map<string, number>();
    const config: VmConfig = {
      vcpus: vm.spec.vcpus,
      ...(vm.spec.maxVcpus !== undefined ? { maxVcpus: vm.spec.maxVcpus } : {}),
      memoryKiB: Math.floor(parseSize(vm.spec.memory as string | number) / 1024),
      ...(vm.spec.maxMemory !== undefined ? { maxMemoryKiB: Math.floor(parseSize(vm.spec.maxMemory as string | number) / 1024) } : {}),
      description: vm.spec.description,
      ...(vm.spec.boot ? bootConfig(vm.spec.boot, ctx) : {}),
      ...(vm.spec.cpu ? { cpu: { mode: vm.spec.cpu.mode as CpuMode, ...(vm.spec.cpu.model !== undefined ? { model: vm.spec.cpu.model } : {}) } } : {}),
      ...(vm.spec.graphics && (vm.spec.graphics.type ?? 'none') !== 'none'
        ? { graphics: { type: vm.spec.graphics.type as GraphicsType, listen: vm.spec.graphics.listen ?? '127.0.0.1' } } : {}),
      ...(vm.spec.guestAgent === false ? { guestAgent: false as const } : {}),
      // Precedence: the VM's own field, then its host's Host manifest (--domain-type comes last, at define).
      ...(vm.spec.domainType !== undefined ? { domainType: vm.spec.domainType as 'kvm' | 'qemu' } : ctx.domainType ? { domainType: ctx.domainType } : {}),
      disks: (vm.spec.disks ?? []).map((d) => {
        const bus = diskBus(d) as DiskBus;
        const family = bus === 'virtio' ? 'vd' : bus === 'ide' ? 'hd' : 'sd';
        const index = busCounters.get(family) ?? 0;
        busCounters.set(family, index + 1);
        return {
          volume: d.volume, path: ctx.volumePath(d.volume), format: ctx.volumeFormat(d.volume), bus,
          target: diskTarget(bus, index), bootOrder: d.boot, ...(d.device === 'cdrom' ? { device: 'cdrom' as const } : {}),
        };
      }),
      nics: (vm.spec.nics ?? []).map((nic) => ({
        network: nic.network, mac: nic.mac?.toLowerCase(), model: nic.model ?? 'virtio',
      })),
      ...(vm.spec.extraDevices?.length ? { extraDevices: vm.spec.extraDevices.map((x) => canonicalFragment(fragOf(x))) } : {}),
    };
    const ci = vm.spec.cloudInit;
    const seed = ci && ci.seedVolume === undefined ? cloudInitConfig(vm.metadata.name, ci, config.disks, ctx) : undefined;
    if (seed) config.cloudInit = seed.config;
    else if (ci?.seedVolume !== undefined) config.cloudInit = existingSeedConfig(ci.seedVolume, ci.pool!, config.disks, ctx);
    const r: DesiredVm = {
      ...desiredBase('VirtualMachine', vm, ctx.host, config),
      autostart: vm.spec.autostart ?? false, state: (vm.spec.state ?? 'running') as 'running' | 'stopped',
      restartPolicy: (vm.spec.restartPolicy ?? 'Never') as RestartPolicy,
      // Handed to the `vm.seed` step with the resource; outside `config` (no hash, record or plan holds it).
      ...(seed ? { seedImage: seed.image } : {}),
    };
    return r;
  });
}

/** spec.boot → `{ boot }` when it declares anything beyond the defaults (BIOS, no kernel), else `{}`. */
function bootConfig(b: NonNullable<VirtualMachineSpec['boot']>, ctx: BuildContext): { boot?: VmBoot } {
  const out: VmBoot = {};
  if (b.firmware === 'uefi') out.firmware = 'uefi';
  if (b.kernelVolume !== undefined) {
    out.kernelVolume = b.kernelVolume;
    out.kernel = ctx.volumePath(b.kernelVolume);
  } else if (b.kernel !== undefined) out.kernel = b.kernel;
  if (b.initrdVolume !== undefined) {
    out.initrdVolume = b.initrdVolume;
    out.initrd = ctx.volumePath(b.initrdVolume);
  } else if (b.initrd !== undefined) out.initrd = b.initrd;
  if (b.cmdline) out.cmdline = b.cmdline;
  return Object.keys(out).length > 0 ? { boot: out } : {};
}
