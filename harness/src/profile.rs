//! Machine profiles: a guest CPU model pinned per profile, because the model picks the decoder
//! (the guest kernel's and rasdaemon's, which reads the guest's /proc/cpuinfo).

use std::fmt;
use std::str::FromStr;

use rasdrill_inject::request::GuestFacts;
use rasdrill_inject::Vendor;
use rasdrill_qemu::cmdline::GUEST_BANKS;

/// A named guest machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub name: &'static str,
    /// QEMU `-cpu` value. `-hypervisor` because edac_mce_amd refuses to load under a hypervisor bit.
    pub cpu_model: &'static str,
    pub vcpus: u32,
    pub memory_mib: u32,
    /// Modules the kernel's own decoder needs on this model, loaded in the guest at boot.
    pub decoder_modules: &'static [&'static str],
    pub summary: &'static str,
}

pub const PROFILES: &[Profile] = &[
    Profile {
        name: "amd-f15h",
        cpu_model: "EPYC,-hypervisor,family=21,model=2",
        vcpus: 2,
        memory_mib: 256,
        decoder_modules: &["edac_mce_amd"],
        summary: "AMD family 15h: edac_mce_amd decodes legacy bank-4 DRAM ECC errors",
    },
    Profile {
        name: "amd-k8",
        cpu_model: "qemu64,-hypervisor",
        vcpus: 2,
        memory_mib: 256,
        decoder_modules: &["edac_mce_amd"],
        summary: "AMD K8: edac_mce_amd's oldest decoder",
    },
    Profile {
        name: "intel-skx",
        cpu_model: "Skylake-Server",
        vcpus: 2,
        memory_mib: 256,
        decoder_modules: &[],
        summary: "Intel Skylake server: raw kernel lines; rasdaemon decodes",
    },
];

pub const DEFAULT_PROFILE: &str = "amd-f15h";

impl Profile {
    /// What the injection planner needs to know of this guest before it boots.
    pub fn facts(&self) -> GuestFacts {
        GuestFacts {
            vcpus: self.vcpus,
            banks: GUEST_BANKS,
            vendor: vendor_of(self.cpu_model),
            pcie: false,
        }
    }

    pub fn by_name(name: &str) -> Option<&'static Profile> {
        PROFILES.iter().find(|p| p.name == name)
    }

    pub fn default_profile() -> &'static Profile {
        Self::by_name(DEFAULT_PROFILE).expect("the default profile is in PROFILES")
    }

    pub fn names() -> Vec<&'static str> {
        PROFILES.iter().map(|p| p.name).collect()
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown machine profile `{0}`: expected one of {valid}", valid = Profile::names().join(", "))]
pub struct UnknownProfile(pub String);

impl FromStr for &'static Profile {
    type Err = UnknownProfile;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Profile::by_name(s).ok_or_else(|| UnknownProfile(s.to_string()))
    }
}

/// The vendor of a QEMU CPU model, as far as its name tells. QEMU's generic `qemu64`/`kvm64`
/// models present AuthenticAMD.
pub fn vendor_of(cpu_model: &str) -> Vendor {
    let m = cpu_model.to_ascii_lowercase();
    if m.contains("vendor=genuineintel") {
        return Vendor::Intel;
    }
    if m.contains("vendor=authenticamd") {
        return Vendor::Amd;
    }
    let name = m.split(',').next().unwrap_or("");
    const AMD: &[&str] = &[
        "epyc", "opteron", "phenom", "athlon", "qemu64", "kvm64", "dhyana",
    ];
    const INTEL: &[&str] = &[
        "skylake",
        "cascadelake",
        "cooperlake",
        "icelake",
        "sapphirerapids",
        "broadwell",
        "haswell",
        "ivybridge",
        "sandybridge",
        "westmere",
        "nehalem",
        "penryn",
        "conroe",
        "core2duo",
        "coreduo",
        "snowridge",
        "denverton",
        "qemu32",
        "kvm32",
    ];
    if AMD.iter().any(|a| name.starts_with(a)) {
        Vendor::Amd
    } else if INTEL.iter().any(|i| name.starts_with(i)) {
        Vendor::Intel
    } else {
        Vendor::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_family_15h_with_its_decoder() {
        let p = Profile::default_profile();
        assert_eq!(p.cpu_model, "EPYC,-hypervisor,family=21,model=2");
        assert_eq!(p.decoder_modules, ["edac_mce_amd"]);
    }

    #[test]
    fn unknown_profile_names_the_valid_ones() {
        let err = "amd-zen9".parse::<&Profile>().unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown machine profile `amd-zen9`: expected one of amd-f15h, amd-k8, intel-skx"
        );
    }

    #[test]
    fn every_amd_profile_hides_the_hypervisor_bit() {
        for p in PROFILES.iter().filter(|p| p.name.starts_with("amd")) {
            assert!(p.cpu_model.contains("-hypervisor"), "{}", p.name);
        }
    }
}
