import Testing
@testable import NimbusRuntime

@Suite struct MemoryLimitTests {
    /// A file system of cgroup files: path → contents.
    func limit(membership: String, mountInfo: String, files: [String: String]) -> Int64? {
        MemoryLimit.cgroupLimit(membership: membership, mountInfo: mountInfo) { files[$0] }
    }

    let v1Mounts = """
        31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
        32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
        35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
        """
    let v1Membership = """
        4:memory:/process_api/066f
        1:cpu:/
        0::/
        """

    @Test func cgroupV1TakesTheTightestLimitOnThePathAndIgnoresUnlimited() {
        #expect(limit(membership: v1Membership, mountInfo: v1Mounts, files: [
            "/sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
            "/sys/fs/cgroup/memory/process_api/memory.limit_in_bytes": "2147483648\n",
            "/sys/fs/cgroup/memory/process_api/066f/memory.limit_in_bytes": "4294967296\n",
        ]) == 2_147_483_648)
        #expect(limit(membership: v1Membership, mountInfo: v1Mounts, files: [
            "/sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
            "/sys/fs/cgroup/memory/process_api/066f/memory.limit_in_bytes": "9223372036854771712\n",
        ]) == nil)
    }

    @Test func cgroupV2InAContainerReadsTheNamespaceRoot() {
        let mounts = "30 25 0:26 / /sys/fs/cgroup ro,nosuid - cgroup2 cgroup rw,nsdelegate"
        #expect(limit(membership: "0::/\n", mountInfo: mounts, files: ["/sys/fs/cgroup/memory.max": "536870912\n"]) == 536_870_912)
        #expect(limit(membership: "0::/\n", mountInfo: mounts, files: ["/sys/fs/cgroup/memory.max": "max\n"]) == nil)
    }

    @Test func cgroupV2OnAHostWalksUpFromTheService() {
        let mounts = "30 25 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw"
        let membership = "0::/system.slice/nimbus.service\n"
        #expect(limit(membership: membership, mountInfo: mounts, files: [
            "/sys/fs/cgroup/system.slice/nimbus.service/memory.max": "max\n",
            "/sys/fs/cgroup/system.slice/memory.max": "1073741824\n",
        ]) == 1_073_741_824)
    }

    @Test func aBindMountedSubtreeIsReadRelativeToItsRoot() {
        // cgroup v1 in a container without a cgroup namespace: the host's path, the container's subtree.
        let mounts = #"40 31 0:32 /docker/abc /sys/fs/cgroup/mem\040ory ro - cgroup cgroup rw,memory"#
        let membership = "9:memory:/docker/abc\n"
        #expect(limit(membership: membership, mountInfo: mounts, files: [
            "/sys/fs/cgroup/mem ory/memory.limit_in_bytes": "268435456",
        ]) == 268_435_456)
        // A path outside the mounted subtree leaves the mount point itself.
        #expect(limit(membership: "9:memory:/elsewhere/x\n", mountInfo: mounts, files: [
            "/sys/fs/cgroup/mem ory/memory.limit_in_bytes": "268435456",
        ]) == 268_435_456)
    }

    @Test func noCgroupMountOrUnreadableFilesMeanNoLimit() {
        #expect(limit(membership: v1Membership, mountInfo: "1 0 8:1 / / rw - ext4 /dev/sda1 rw", files: [:]) == nil)
        #expect(limit(membership: "", mountInfo: v1Mounts, files: [:]) == nil)
        #expect(limit(membership: v1Membership, mountInfo: v1Mounts, files: [
            "/sys/fs/cgroup/memory/process_api/066f/memory.limit_in_bytes": "garbage",
        ]) == nil)
    }

    @Test func theCurrentLimitIsAtMostTheMachinesMemory() throws {
        let machine = try #require(MemoryLimit.physicalMemoryBytes())
        let current = try #require(MemoryLimit.current())
        #expect(current > 0 && current <= machine)
    }
}
