import Foundation
import Logging
import Synchronization
import Testing
@testable import NimbusRuntime

@Suite struct DiskSpaceGuardTests {
    /// A file system whose free space and the time the test sets; counts the measurements.
    final class FakeDisk: Sendable {
        let free = Mutex<Int64?>(1 << 30)
        let now = Mutex<Int64>(0)
        let measurements = Atomic<Int>(0)

        func makeGuard(reserve: Int64 = 64 << 20) -> DiskSpaceGuard {
            DiskSpaceGuard(path: "/data", minimumFreeBytes: reserve, service: "queue", recheckMillis: 250,
                           clock: { self.now.withLock { $0 } },
                           measure: { _ in self.measurements.add(1, ordering: .relaxed); return self.free.withLock { $0 } },
                           logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() })
        }
        func set(free bytes: Int64?, at millis: Int64) {
            free.withLock { $0 = bytes }
            now.withLock { $0 = millis }
        }
    }

    func refusal(_ disk: DiskSpaceGuard) -> WireError? {
        do { try disk.checkRoomToWrite(); return nil } catch { return error }
    }

    @Test func writesAreRefusedUnderTheReserveAndAcceptedAgainOnceSpaceIsFreed() throws {
        let fake = FakeDisk()
        let disk = fake.makeGuard()
        #expect(refusal(disk) == nil)
        fake.set(free: 10 << 20, at: 1_000)
        let error = try #require(refusal(disk))
        #expect(error.code == "ServiceUnavailable")
        #expect(error.message.contains("10 MB free, under the 64 MB reserve (storage.minFreeDiskMB)"), "\(error.message)")
        fake.set(free: 64 << 20, at: 2_000)
        #expect(refusal(disk) == nil)
    }

    @Test func freeSpaceIsMeasuredAtMostOncePerInterval() {
        let fake = FakeDisk()
        let disk = fake.makeGuard()
        for _ in 0..<100 { #expect(refusal(disk) == nil) }
        #expect(fake.measurements.load(ordering: .relaxed) == 1)
        // Filled within the interval: noticed at the next measurement, not before.
        fake.set(free: 0, at: 249)
        #expect(refusal(disk) == nil)
        fake.now.withLock { $0 = 250 }
        #expect(refusal(disk)?.code == "ServiceUnavailable")
        #expect(fake.measurements.load(ordering: .relaxed) == 2)
    }

    @Test func anUnmeasurableDiskOrAZeroReserveNeverRefuses() {
        let fake = FakeDisk()
        fake.set(free: nil, at: 0)
        #expect(refusal(fake.makeGuard()) == nil)
        fake.set(free: 0, at: 1_000)
        #expect(refusal(fake.makeGuard(reserve: 0)) == nil)
        #expect(fake.measurements.load(ordering: .relaxed) == 1)
    }

    @Test func theRealMeasurementReadsTheFileSystem() throws {
        let free = try #require(DiskSpaceGuard.availableBytes(FileManager.default.temporaryDirectory.path))
        #expect(free > 0)
        #expect(DiskSpaceGuard.availableBytes("/no/such/folder/\(UUID())") == nil)
    }
}
