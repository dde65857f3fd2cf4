import XCTest
import SegCore
@testable import SegTrain
