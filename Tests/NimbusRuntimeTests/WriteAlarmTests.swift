import Foundation
import Logging
import Synchronization
import Testing
@testable import NimbusRuntime

@Suite struct WriteAlarmTests {
    /// A disk and a process whose free space, memory and time the test sets; counts the measurements.
    final class Fake: Sendable {
        let free = Mutex<Int64?>(1 << 30)
        let resident = Mutex<Int64?>(100 << 20)
        let now = Mutex<Int64>(0)
        let measurements = Atomic<Int>(0)

        func makeAlarm(reserve: Int64 = 64 << 20, memoryLimit: Int64 = 1 << 30) -> WriteAlarm {
            WriteAlarm(service: "queue", conditions: [
                WriteAlarm.disk(path: "/data", minimumFreeBytes: reserve) { _ in
                    self.measurements.add(1, ordering: .relaxed)
                    return self.free.withLock { $0 }
                },
                WriteAlarm.memory(maximumBytes: memoryLimit) { self.resident.withLock { $0 } },
            ], recheckMillis: 250, clock: { self.now.withLock { $0 } }, logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() })
        }
        func set(free bytes: Int64?, at millis: Int64) {
            free.withLock { $0 = bytes }
            now.withLock { $0 = millis }
        }
    }

    func refusal(_ alarm: WriteAlarm) -> WireError? {
        do { try alarm.checkRoomToWrite(); return nil } catch { return error }
    }

    @Test func writesAreRefusedUnderTheDiskReserveAndAcceptedAgainOnceSpaceIsFreed() throws {
        let fake = Fake()
        let alarm = fake.makeAlarm()
        #expect(refusal(alarm) == nil)
        fake.set(free: 10 << 20, at: 1_000)
        let error = try #require(refusal(alarm))
        #expect(error.code == "ServiceUnavailable")
        #expect(error.message.contains("queue: the data directory's file system has 10 MB free, under the 64 MB reserve (storage.minFreeDiskMB)"), "\(error.message)")
        fake.set(free: 64 << 20, at: 2_000)
        #expect(refusal(alarm) == nil)
    }

    @Test func writesAreRefusedOverTheMemoryLimit() throws {
        let fake = Fake()
        let alarm = fake.makeAlarm()
        fake.resident.withLock { $0 = 2 << 30 }
        fake.now.withLock { $0 = 1_000 }
        let error = try #require(refusal(alarm))
        #expect(error.message.contains("the node holds 2048 MB of memory, over its 1024 MB limit (storage.maxMemoryPercent)"), "\(error.message)")
        fake.resident.withLock { $0 = 1 << 30 }
        fake.now.withLock { $0 = 2_000 }
        #expect(refusal(alarm) == nil)
    }

    @Test func conditionsAreMeasuredAtMostOncePerInterval() {
        let fake = Fake()
        let alarm = fake.makeAlarm()
        for _ in 0..<100 { #expect(refusal(alarm) == nil) }
        #expect(fake.measurements.load(ordering: .relaxed) == 1)
        // Filled within the interval: noticed at the next measurement, not before.
        fake.set(free: 0, at: 249)
        #expect(refusal(alarm) == nil)
        fake.now.withLock { $0 = 250 }
        #expect(refusal(alarm)?.code == "ServiceUnavailable")
        #expect(refusal(alarm)?.code == "ServiceUnavailable")
        #expect(fake.measurements.load(ordering: .relaxed) == 2)
    }

    @Test func anUnmeasurableConditionOrNoConditionNeverRefuses() {
        let fake = Fake()
        fake.set(free: nil, at: 0)
        fake.resident.withLock { $0 = nil }
        #expect(refusal(fake.makeAlarm()) == nil)
        let none = WriteAlarm(service: "queue", conditions: [], logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() })
        #expect(refusal(none) == nil)
    }

    @Test func theRealMeasurementsReadTheSystem() throws {
        let free = try #require(WriteAlarm.availableBytes(FileManager.default.temporaryDirectory.path))
        #expect(free > 0)
        #expect(WriteAlarm.availableBytes("/no/such/folder/\(UUID())") == nil)
        let resident = try #require(WriteAlarm.residentBytes())
        let total = try #require(MemoryLimit.physicalMemoryBytes())
        #expect(resident > 1 << 20 && resident < total)
    }
}
